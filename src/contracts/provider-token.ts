import { createHmac } from 'node:crypto';

/**
 * The bearer token of one Provider's runtime, derived from the hook server's secret: each runtime
 * gets its own (a leaked runtime token opens no other runtime) and nothing needs storing. The UID
 * is part of it, so a Provider deleted and re-created under the same name gets a new token.
 */
export function providerRuntimeToken(secret: string, provider: { namespace: string; name: string; uid?: string }): string {
  return createHmac('sha256', secret).update(`${provider.namespace}/${provider.name}/${provider.uid ?? ''}`).digest('hex');
}

/** The name of everything a Provider's runtime consists of (Deployment, Service, ServiceAccount). */
export function providerRuntimeName(provider: { name: string }): string {
  return `virtrigaud-provider-${provider.name}`.slice(0, 63).replace(/-+$/, '');
}

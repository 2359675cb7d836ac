// An HTTP request that got no answer (refused, reset, timed out, aborted, or a TLS peer we do not
// trust) may or may not have reached the hypervisor: always Unreachable, so always retryable.
// Shared by the undici-based clients (Proxmox REST, vSphere SOAP).
import { UnreachableError } from '../../contracts/driver.js';

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** `tlsHint` names the provider's own settings, e.g. "set PVE_CA_BUNDLE, or PVE_INSECURE_SKIP_VERIFY=true for testing only". */
export function transportError(error: unknown, host: string, tlsHint: string): UnreachableError {
  if (error instanceof UnreachableError) return error;
  const cause = typeof error === 'object' && error !== null && 'cause' in error ? (error as { cause: unknown }).cause : undefined;
  const code = codeOf(error) ?? codeOf(cause);
  const name = error instanceof Error ? error.name : '';
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return new UnreachableError(`request to ${host} aborted`);
  if (code !== undefined && TLS_CODES.has(code)) return new UnreachableError(`TLS certificate of ${host} is not trusted (${code}): ${tlsHint}`);
  if (code !== undefined && TIMEOUT_CODES.has(code)) return new UnreachableError(`request to ${host} timed out (${code})`);
  return new UnreachableError(`cannot reach ${host}: ${code ?? (error instanceof Error ? error.message : 'unknown error')}`);
}

// The undici pool of an HTTPS hypervisor API (Proxmox REST, vSphere SOAP): TLS verified unless
// explicitly skipped, and a configured CA bundle added to the public roots instead of replacing
// them, so a CA-signed endpoint keeps working when a private CA is configured too.
import { rootCertificates } from 'node:tls';
import { Pool } from 'undici';

export interface HttpsPoolOptions {
  connections: number;
  timeoutMs: number;
  insecureSkipVerify: boolean;
  caBundle?: string | undefined;
}

export function httpsPool(origin: string, options: HttpsPoolOptions): Pool {
  return new Pool(origin, {
    connections: options.connections,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: {
      timeout: Math.min(options.timeoutMs, 10_000),
      rejectUnauthorized: !options.insecureSkipVerify,
      ...(options.caBundle === undefined ? {} : { ca: [...rootCertificates, options.caBundle] }),
    },
  });
}

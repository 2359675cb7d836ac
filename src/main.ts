// Entry point. `serve`: the hook server with the embedded simulator (npm start).
import { REDACTED_LOG_PATHS, buildServer } from './hooks/server.js';
import { InProcessRegistry } from './hypervisors/registry.js';

function usage(): never {
  console.error('usage: node dist/main.js serve   (env: PORT=8080, HOST=0.0.0.0, LOG_LEVEL=info)');
  process.exit(2);
}

async function serve(): Promise<void> {
  const port = Number(process.env['PORT'] ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number, not "${process.env['PORT']}"`);
    process.exit(2);
  }
  const host = process.env['HOST'] ?? '0.0.0.0';
  const app = buildServer({
    registry: InProcessRegistry.withSimulators(),
    logger: { level: process.env['LOG_LEVEL'] ?? 'info', redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' } },
  });
  const shutdown = (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  await app.listen({ port, host });
}

const [command = 'serve'] = process.argv.slice(2);
if (command === 'serve') {
  serve().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  usage();
}

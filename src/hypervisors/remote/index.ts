export { RemoteDriver, type RemoteDriverOptions } from './driver.js';
export { ProviderRuntimeMetrics, buildProviderRuntime, type ProviderRuntimeOptions, type ReadinessOptions } from './runtime.js';

export { RemoteDriver, type RemoteDriverOptions } from './driver.js';
export { ProviderRuntimeMetrics, RuntimeActivity, buildProviderRuntime, type ProviderRuntimeOptions, type ReadinessOptions } from './runtime.js';

export {
  DEFAULT_DURATIONS,
  SimulatedHypervisor,
  type SimCallOptions,
  type SimDatastore,
  type SimFault,
  type SimHost,
  type SimOperation,
  type SimTemplate,
  type SimulatorDurations,
  type SimulatorOptions,
  type SimVMDetails,
} from './hypervisor.js';
export { SimulatorDriver } from './driver.js';

// A Metacontroller stand-in and an in-memory API server for lifecycle tests.
export {
  ApiError,
  FakeCluster,
  deepEqual,
  mergePatch,
  type KubeObject,
  type ObjectValidator,
  type OwnerReference,
  type StatusPruner,
  type WatchEvent,
  type WatchListener,
} from './cluster.js';
export { MetacontrollerStandIn, type HookCall, type StandInOptions, type SyncErrorEvent } from './metacontroller.js';
export type { HookName } from './controller.js';
export { LAST_APPLIED, selectorMatches, typeKey, type LabelSelector } from './resources.js';

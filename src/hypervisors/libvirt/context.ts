import type { LibvirtConfig } from './config.js';
import type { TaskRegistry } from './tasks.js';
import type { LibvirtHost } from './virsh.js';

/** What every verb module shares: the host connection, the configuration and the running tasks. */
export interface LibvirtContext {
  host: LibvirtHost;
  config: LibvirtConfig;
  tasks: TaskRegistry;
}

import type { LibvirtConfig } from './config.js';
import type { HostTasks } from './tasks.js';
import type { LibvirtHost } from './virsh.js';

/** What every verb module shares: the host connection, the configuration and the host's task records. */
export interface LibvirtContext {
  host: LibvirtHost;
  config: LibvirtConfig;
  tasks: HostTasks;
}

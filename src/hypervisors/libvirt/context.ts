import type { LibvirtConfig } from './config.js';
import type { HostTasks } from './tasks.js';
import type { Transfers } from './transfers.js';
import type { LibvirtHost } from './virsh.js';

/**
 * What every verb module shares: the host connection, the configuration, the host's task records
 * and the disk transfers this process runs.
 */
export interface LibvirtContext {
  host: LibvirtHost;
  config: LibvirtConfig;
  tasks: HostTasks;
  transfers: Transfers;
}

export {
  LibvirtConfigError,
  Secret,
  describeConfig,
  libvirtConfigFromEnv,
  libvirtDriverFromEnv,
  parseLibvirtUri,
  type LibvirtConfig,
} from './config.js';
export { LIBVIRT_CAPABILITIES, LibvirtDriver, type LibvirtDriverOptions } from './driver.js';
export { commandLine, shellQuote } from './shell.js';

// The name of a new driver and every spelling the skeleton needs of it. The name becomes a
// Provider's `spec.type`, a folder under src/hypervisors/, identifiers (`acmeDriverFromEnv`,
// `AcmeDriver`) and an environment prefix (`ACME_ENDPOINT`), so it must be valid as all four.
import { SERVED_PROVIDER_TYPES } from '../../contracts/crds/provider.js';

/** The Provider CRD's `spec.type` allows 16 characters (src/contracts/crds/provider.ts). */
export const MAX_NAME_LENGTH = 16;

// A DNS label (RFC 1123) that starts with a letter: identifiers and variable names cannot start
// with a digit.
const NAME = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;

/**
 * Names a new driver may not take even with --force: the drivers the project serves (their folders
 * hold far more than a skeleton would overwrite) and what src/hypervisors/ holds besides drivers.
 */
export const RESERVED_NAMES: readonly string[] = [...SERVED_PROVIDER_TYPES, 'common', 'remote', 'registry', 'index', 'driver', 'hypervisor'];

export interface DriverNames {
  /** As written: `my-hv`; the Provider type and the folder. */
  name: string;
  /** `myHv`, for functions: `myHvDriverFromEnv`. */
  camel: string;
  /** `MyHv`, for classes: `MyHvDriver`. */
  pascal: string;
  /** `MY_HV`, for constants and environment variables: `MY_HV_ENDPOINT`. */
  constant: string;
  /** The name as an object literal's key: `acme`, `'my-hv'`. */
  key: string;
}

/** Why `name` cannot name a new driver; undefined when it can. */
export function nameProblem(name: string): string | undefined {
  if (name.length > MAX_NAME_LENGTH) return `"${name}" is longer than ${MAX_NAME_LENGTH} characters, the limit of a Provider's spec.type`;
  if (!NAME.test(name)) {
    return `"${name}" is not a driver name: use lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (a DNS label)`;
  }
  if (RESERVED_NAMES.includes(name)) return `"${name}" is reserved (${RESERVED_NAMES.join(', ')})`;
  return undefined;
}

/** Every spelling of a name that nameProblem accepted. */
export function driverNames(name: string): DriverNames {
  const words = name.split('-').filter((word) => word !== '');
  const capitalized = words.map((word) => word.charAt(0).toUpperCase() + word.slice(1));
  return {
    name,
    camel: (words[0] ?? '') + capitalized.slice(1).join(''),
    pascal: capitalized.join(''),
    constant: words.map((word) => word.toUpperCase()).join('_'),
    key: name.includes('-') ? `'${name}'` : name,
  };
}

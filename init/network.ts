/**
 * Network interface names and IPv4 addresses as init/ accepts them, for the configuration
 * (`boot.interfaces`, init/config.ts) and the native wrappers' argument checks (init/native.ts) alike.
 *
 * Addresses are strict dotted quads: four decimal octets 0..255 without leading zeros, so "010.0.2.15"
 * (which inet_aton(3) would read as octal 8.0.2.15) is refused rather than guessed at, and the text in the
 * configuration is the one canonical spelling of the address it measures. Interface names are what
 * IFNAMSIZ holds and the kernel's dev_valid_name() allows, narrowed to [A-Za-z0-9_.-]: no "/", ":" (the
 * old alias syntax), spaces, or "." and "..". Pure: no I/O.
 */

/** IFNAMSIZ (16, include/uapi/linux/if.h) less the terminating NUL. */
export const INTERFACE_NAME_MAX_BYTES = 15;
/** The longest prefix of an IPv4 address: 32 bits. */
export const IPV4_PREFIX_MAX = 32;

const INTERFACE_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const DOTTED_QUAD_RE = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
/** "a.b.c.d/p", the prefix 0..32 in decimal without leading zeros. */
const PREFIX_RE = /^(?:[0-9]|[12][0-9]|3[0-2])$/;

/** Explains an interface name rule in error messages. */
export const INTERFACE_NAME_EXPECTED = `an interface name of 1..${INTERFACE_NAME_MAX_BYTES} characters [A-Za-z0-9_.-], not "." or ".."`;

export function isInterfaceName(value: unknown): value is string {
  return typeof value === 'string' && INTERFACE_NAME_RE.test(value) && value !== '.' && value !== '..';
}

/** A dotted quad: "10.0.2.15". */
export function isIpv4Address(value: unknown): value is string {
  return typeof value === 'string' && DOTTED_QUAD_RE.test(value);
}

export interface InterfaceAddress {
  /** The dotted quad. */
  address: string;
  /** 0..32. */
  prefixLength: number;
}

/** "10.0.2.15/24" as `{ address, prefixLength }`, or null if it is not exactly that form. */
export function parseInterfaceAddress(text: unknown): InterfaceAddress | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  if (!isIpv4Address(address) || !PREFIX_RE.test(prefix)) return null;
  return { address, prefixLength: Number(prefix) };
}

/**
 * The version string an x86 bzImage carries in its setup header (Linux Documentation/arch/x86/boot.rst:
 * "HdrS" at 0x202, the boot protocol version at 0x206, and at 0x20E `kernel_version`, the offset of a
 * NUL-terminated string less 0x200, from protocol 2.00). The EIF writer records it as the metadata's
 * KernelVersion, as AWS's builder records one. Best effort and unmeasured: anything unexpected gives null,
 * never an error. Pure.
 */

const HDRS_OFFSET = 0x202;
const HDRS = [0x48, 0x64, 0x72, 0x53]; // "HdrS"
const PROTOCOL_OFFSET = 0x206;
const KERNEL_VERSION_OFFSET = 0x20e;
/** Longest version read; Debian's `6.12.38+deb13-cloud-amd64` is 25 characters. */
const VERSION_MAX_CHARS = 64;

/** The first word of a bzImage's version string (`6.1.0-37-cloud-amd64`), or null. */
export function bzImageKernelVersion(kernel: Uint8Array): string | null {
  if (!(kernel instanceof Uint8Array) || kernel.length < KERNEL_VERSION_OFFSET + 2) return null;
  if (HDRS.some((byte, i) => kernel[HDRS_OFFSET + i] !== byte)) return null;
  const protocol = kernel[PROTOCOL_OFFSET]! | (kernel[PROTOCOL_OFFSET + 1]! << 8);
  const pointer = kernel[KERNEL_VERSION_OFFSET]! | (kernel[KERNEL_VERSION_OFFSET + 1]! << 8);
  if (protocol < 0x200 || pointer === 0) return null;
  let version = '';
  for (let at = pointer + 0x200; at < kernel.length && version.length <= VERSION_MAX_CHARS; at++) {
    const byte = kernel[at]!;
    if (byte === 0x00 || byte === 0x20) break;
    if (byte < 0x21 || byte > 0x7e) return null;
    version += String.fromCharCode(byte);
  }
  return version.length > 0 && version.length <= VERSION_MAX_CHARS ? version : null;
}

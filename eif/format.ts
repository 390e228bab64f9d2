/**
 * The EIF version 4 layout (specs/nitro-enclave.md §1, from AWS's "Enclave Image File" format): the
 * 548-byte big-endian header, the 12-byte section headers, the section types, and the limits both the
 * reader and the writer hold. Only constants and the header's field positions live here; reader.ts
 * decides what a valid image is, writer.ts produces one.
 */

/** `.eif` in ASCII. */
export const EIF_MAGIC: Readonly<Uint8Array> = Uint8Array.of(0x2e, 0x65, 0x69, 0x66);
/** The one version read and written: AWS's builders write 4 (V3 -> V4 added the metadata section) and
 * QEMU's nitro-enclave machine refuses anything older. */
export const EIF_VERSION = 4;
/** magic 4 + version 2 + flags 2 + default_mem 8 + default_cpus 8 + reserved 2 + num_sections 2 +
 * section_offsets 32 x 8 + section_sizes 32 x 8 + unused 4 + eif_crc32 4 = 548. */
export const EIF_HEADER_BYTES = 548;
/** type 2 + flags 2 + size 8. */
export const EIF_SECTION_HEADER_BYTES = 12;
/** The header's offset and size tables have 32 entries (specs/nitro-enclave.md §1). */
export const EIF_MAX_SECTIONS = 32;
/** The header's range for num_sections (specs/nitro-enclave.md §1); the reader then also requires a kernel,
 * a command line and a ramdisk among them, as QEMU does. */
export const EIF_MIN_SECTIONS = 2;
/** Header flag bit 0: the image is for aarch64 (clear: x86_64). No other bit is defined. */
export const EIF_FLAG_AARCH64 = 0x1;

/** Field positions in the header. */
export const HEADER = {
  magic: 0,
  version: 4,
  flags: 6,
  defaultMemory: 8,
  defaultCpus: 16,
  reserved: 24,
  numSections: 26,
  sectionOffsets: 28,
  sectionSizes: 28 + EIF_MAX_SECTIONS * 8,
  unused: 28 + 2 * EIF_MAX_SECTIONS * 8,
  crc: 28 + 2 * EIF_MAX_SECTIONS * 8 + 4,
} as const;

/** Section type numbers (specs/nitro-enclave.md §1); 0 is "invalid" and anything above 5 unknown. */
export const SECTION_TYPES = { kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 } as const;
export type EifSectionType = keyof typeof SECTION_TYPES;
export const SECTION_TYPE_NAMES: ReadonlyMap<number, EifSectionType> = new Map(
  (Object.entries(SECTION_TYPES) as [EifSectionType, number][]).map(([name, value]) => [value, name]),
);

/**
 * Default bound on an image's declared size. Ours: the reader streams, so memory does not grow with the
 * image; this bounds the work one file can ask for (two SHA-384 passes and a CRC over every byte, about a
 * minute for 16 GiB here). Images with model weights in a ramdisk can be several GiB; a caller expecting
 * more passes `maxBytes`.
 */
export const EIF_DEFAULT_MAX_BYTES = 16 * 1024 ** 3;
/**
 * Largest command line section. Linux's COMMAND_LINE_SIZE is 2048 on x86_64 (arch/x86/include/asm/setup.h)
 * and 4096 where larger; the boot protocol has no room for more, so a longer one is not a command line.
 */
export const EIF_CMDLINE_MAX_BYTES = 4096;
/**
 * Largest metadata section, the one section held in memory whole besides the command line and signature.
 * AWS's builder writes the image name, the build facts and the source image's `docker inspect` JSON
 * (DockerInfo): a few KiB; 1 MiB leaves room for large labels and environments.
 */
export const EIF_METADATA_MAX_BYTES = 1024 * 1024;
/**
 * Largest signature section: a CBOR array holding one PEM certificate (1-2 KiB, each byte a CBOR integer
 * of one or two bytes) and one COSE_Sign1 of about 200 bytes, so under 8 KiB; 64 KiB bounds it generously.
 */
export const EIF_SIGNATURE_MAX_BYTES = 64 * 1024;
/** Deepest metadata JSON accepted; AWS's nests 2-3 levels plus what `docker inspect` holds. */
export const EIF_METADATA_MAX_DEPTH = 32;

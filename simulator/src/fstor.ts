/**
 * Reader of the DeviceScript settings store ("fstor") inside a VM flash image. Modelled on the format that
 * jacdac-c source/jd_fstor.c writes (read there, not copied); the layout below was checked on real images the
 * 2.16.4 WASM VM saved (simulator/test/fixtures/fstor-real-firmware.flash.gz).
 *
 * Layout, all little-endian, offsets from the start of the image (= the store's base):
 * - Two header halves of `headerPages × pageSize` bytes each, at 0 and at one half's size (VM: 2 × 4 KB pages,
 *   so at 0 and 0x2000). A half starts with a 24-byte header: magic0 u32 = 0x52545346 ("FSTR"),
 *   magic1 u32 = 0x6becea0a, generation u32, page_size u32, total_pages u16, header_pages u16, reserved u32.
 *   The store in use is the valid half with the higher generation (compaction writes the other half, gen + 1).
 * - After the header, 24-byte entries: key[16] (NUL-padded, at most 15 characters), offset u32, size u32. The
 *   list ends at the first entry whose offset is 0xffffffff (erased flash). Entries only ever get appended: the
 *   last copy of a key is its live value; a delete is a copy with size 0.
 * - Small values grow down from the end of the half: each at `offset`, `size` bytes, in a slot rounded up to 8
 *   bytes (a 0-byte value still takes 8). The lowest offset is the start of the data ("data_start"); the gap
 *   between the last entry and data_start must be erased (0xff), else the runtime reformats at mount.
 * - "Large" entries (key starts with '*', e.g. `*prog`, the deployed program) point at whole pages after the two
 *   halves (VM: from 0x4000) and take no room in the half but their entry.
 * - Settings-service keys carry a ':' prefix (jacdac-c services/settings.c): `INTERVAL_S` is stored as
 *   `:INTERVAL_S`. Other runtime parts use other prefixes.
 *
 * Images from the WASM VM: unwritten flash is 0x37 (runtime/posix/flash.c FILL_PATTERN), erased flash 0xff.
 */

export const FSTOR_MAGIC0 = 0x52545346;
export const FSTOR_MAGIC1 = 0x6becea0a;
export const FSTOR_HEADER_BYTES = 24;
export const FSTOR_ENTRY_BYTES = 24;
/** Longest key (jd_fstor.c FSTOR_KEYSIZE); the key field is one byte longer for its NUL. */
export const FSTOR_KEY_BYTES = 16;
const ERASED_OFFSET = 0xffffffff;

export interface FstorEntry {
  /** The key as stored (with its ':' or '*' prefix). */
  key: string;
  /** Where the value starts, from the image start. */
  offset: number;
  size: number;
  /** Byte position of this 24-byte entry in the image. */
  position: number;
  /** Index in the entry list (later = newer). */
  index: number;
  /** Key starts with '*': a large entry (whole data pages), e.g. the program. */
  large: boolean;
}

export interface FstorStore {
  generation: number;
  pageSize: number;
  totalPages: number;
  headerPages: number;
  /** Bytes per header half (headerPages × pageSize). */
  halfBytes: number;
  /** Where the half in use starts (0 or halfBytes). */
  headerOffset: number;
  /** Every entry in order, older copies included. */
  entries: FstorEntry[];
  /** Lowest small-value offset (the end of the half when there is none): new values go just below it. */
  dataStart: number;
  /** Position where the next entry would go. */
  nextEntryPosition: number;
}

/** 8-byte slot of a value (jd_fstor.c `align`: 0 bytes still take 8). */
export function alignValue(size: number): number {
  return size === 0 ? 8 : (size + 7) & ~7;
}

function u32(image: Uint8Array, at: number): number {
  if (at + 4 > image.length) return ERASED_OFFSET; // beyond what the VM saved: treat as erased
  return (image[at]! | (image[at + 1]! << 8) | (image[at + 2]! << 16) | (image[at + 3]! << 24)) >>> 0;
}

function u16(image: Uint8Array, at: number): number {
  if (at + 2 > image.length) return 0xffff;
  return image[at]! | (image[at + 1]! << 8);
}

interface Header {
  offset: number;
  generation: number;
  pageSize: number;
  totalPages: number;
  headerPages: number;
}

function headerAt(image: Uint8Array, offset: number): Header | undefined {
  if (offset + FSTOR_HEADER_BYTES > image.length) return undefined;
  if (u32(image, offset) !== FSTOR_MAGIC0 || u32(image, offset + 4) !== FSTOR_MAGIC1) return undefined;
  const pageSize = u32(image, offset + 12);
  const totalPages = u16(image, offset + 16);
  const headerPages = u16(image, offset + 18);
  if (pageSize === 0 || headerPages === 0 || totalPages < headerPages * 2) return undefined;
  return { offset, generation: u32(image, offset + 8), pageSize, totalPages, headerPages };
}

/**
 * Parses the store in use, or undefined when the image holds none (empty image, never formatted, or both
 * headers damaged). Does not judge the free gap: mounting is the VM's business; this is a reader.
 */
export function parseFstor(image: Uint8Array): FstorStore | undefined {
  const first = headerAt(image, 0);
  const half = first ? first.headerPages * first.pageSize : undefined;
  // The second half's position comes from a header's own page fields (both halves have the same geometry).
  let second = half !== undefined ? headerAt(image, half) : undefined;
  if (!first) {
    // Only the second half may be valid: find its geometry by trying the page sizes a store can have.
    for (let size = 256; size <= 65536 && !second; size *= 2) {
      const h = headerAt(image, size);
      if (h && h.headerPages * h.pageSize === size) second = h;
    }
  }
  if (second && first && (second.pageSize !== first.pageSize || second.headerPages !== first.headerPages)) second = undefined;
  const header = first && second ? (first.generation > second.generation ? first : second) : (first ?? second);
  if (!header) return undefined;
  const halfBytes = header.headerPages * header.pageSize;
  const end = header.offset + halfBytes;
  const entries: FstorEntry[] = [];
  let position = header.offset + FSTOR_HEADER_BYTES;
  let dataStart = end;
  while (position + FSTOR_ENTRY_BYTES <= Math.min(end, dataStart)) {
    const offset = u32(image, position + FSTOR_KEY_BYTES);
    if (offset === ERASED_OFFSET) break;
    const size = u32(image, position + FSTOR_KEY_BYTES + 4);
    const key = readKey(image, position);
    const large = key.startsWith("*");
    entries.push({ key, offset, size, position, index: entries.length, large });
    if (!large && offset < dataStart) dataStart = offset;
    position += FSTOR_ENTRY_BYTES;
  }
  return {
    generation: header.generation,
    pageSize: header.pageSize,
    totalPages: header.totalPages,
    headerPages: header.headerPages,
    halfBytes,
    headerOffset: header.offset,
    entries,
    dataStart,
    nextEntryPosition: position,
  };
}

function readKey(image: Uint8Array, position: number): string {
  let end = position;
  while (end < position + FSTOR_KEY_BYTES && image[end] !== 0) end++;
  return Buffer.from(image.subarray(position, end)).toString("latin1");
}

/** The live copy of every key: its last entry (a deleted key's live copy has size 0). */
export function liveEntries(store: FstorStore): Map<string, FstorEntry> {
  const live = new Map<string, FstorEntry>();
  for (const e of store.entries) live.set(e.key, e);
  return live;
}

/** A value's bytes (those the image holds). */
export function entryValue(image: Uint8Array, entry: FstorEntry): Uint8Array {
  return image.subarray(entry.offset, Math.min(image.length, entry.offset + entry.size));
}

/** The settings-service name of a stored key (`:INTERVAL_S` → `INTERVAL_S`), or undefined for other keys. */
export function settingName(entry: FstorEntry): string | undefined {
  return entry.key.startsWith(":") ? entry.key.slice(1) : undefined;
}

/**
 * Bytes of the settings service's read reply for this entry: name + NUL + value (services/settings.c builds
 * it that way and sends it as one packet). Undefined for keys the settings service does not serve.
 */
export function settingReadBytes(entry: FstorEntry): number | undefined {
  const name = settingName(entry);
  return name === undefined ? undefined : Buffer.byteLength(name, "latin1") + 1 + entry.size;
}

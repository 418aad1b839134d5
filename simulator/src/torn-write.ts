/**
 * Torn settings writes (fault kind `torn-write`): a power cut between a settings value and its entry.
 *
 * What the runtime does (jacdac-c source/jd_fstor.c, `jd_settings_set_bin`, modelled, not copied): it moves the
 * data start down by the value's 8-byte slot, programs the value's bytes there (in the erased gap between the
 * entry list and the data), then programs the 24-byte entry (key, offset, size) after the last entry, then
 * syncs. A delete is the same with a 0-byte value: only the entry is programmed. The WASM VM hands its image
 * to the host only at that sync (runtime/posix/flash.c `flash_sync` → `flashSave`), so the host never sees the
 * state in between; on an ESP32 the bytes go to flash as they are programmed and a power cut can stop anywhere.
 *
 * So: a flashSave whose difference from the previous saved image is exactly one such write (same store, same
 * generation, one entry more, its value in the slot just below the old data start, nothing else changed) is
 * an opportunity. The torn image is the previous image plus the first k bytes of the programming sequence
 * (value bytes, then entry bytes). Anything else — compaction (gc: other half, generation + 1), a deploy
 * (large entry, erased pages), the first format — is not an opportunity: those are not modelled.
 *
 * What the torn image then does is the VM's business: its own mount code reads it on the next boot.
 */
import { FSTOR_ENTRY_BYTES, type FstorEntry, alignValue, parseFstor } from "./fstor.ts";

export interface SettingsWrite {
  /** The entry that was appended (its key as stored, e.g. `:o3`). */
  entry: FstorEntry;
  /** Where the value was programmed (empty for a delete / 0-byte value). */
  valueStart: number;
  valueBytes: number;
  /** Where the entry was programmed. */
  entryPosition: number;
  /** Total bytes programmed: value + 24. */
  programmedBytes: number;
}

/** The previous image's bytes, or 0x37 (the VM's unwritten-flash fill) beyond what it saved. */
function byteAt(image: Uint8Array, at: number): number {
  return at < image.length ? image[at]! : 0x37;
}

/**
 * Recognises `next` as `prev` plus exactly one settings write (value then entry); undefined otherwise.
 * Bytes past the end of the shorter image are not compared: the VM saves up to its last non-fill byte minus
 * one, so image lengths can differ by a byte at the end of the data pages, far from the settings half.
 */
export function findSettingsWrite(prev: Uint8Array, next: Uint8Array): SettingsWrite | undefined {
  const before = parseFstor(prev);
  const after = parseFstor(next);
  if (!before || !after) return undefined;
  if (before.headerOffset !== after.headerOffset || before.generation !== after.generation) return undefined;
  if (after.entries.length !== before.entries.length + 1) return undefined;
  const entry = after.entries[after.entries.length - 1]!;
  if (entry.large || entry.position !== before.nextEntryPosition) return undefined;
  const valueStart = before.dataStart - alignValue(entry.size);
  if (entry.offset !== valueStart || valueStart < entry.position + FSTOR_ENTRY_BYTES) return undefined;
  const inValue = (i: number) => i >= valueStart && i < valueStart + entry.size;
  const inEntry = (i: number) => i >= entry.position && i < entry.position + FSTOR_ENTRY_BYTES;
  const common = Math.min(prev.length, next.length);
  for (let i = 0; i < common; i++) {
    if (prev[i] !== next[i] && !inValue(i) && !inEntry(i)) return undefined;
  }
  // The programmed ranges were erased before (the VM's flash_program asserts it; NOR flash needs it).
  for (let i = valueStart; i < valueStart + entry.size; i++) if (byteAt(prev, i) !== 0xff) return undefined;
  for (let i = entry.position; i < entry.position + FSTOR_ENTRY_BYTES; i++) if (byteAt(prev, i) !== 0xff) return undefined;
  return {
    entry,
    valueStart,
    valueBytes: entry.size,
    entryPosition: entry.position,
    programmedBytes: entry.size + FSTOR_ENTRY_BYTES,
  };
}

/** `prev` with the first `k` bytes of the write programmed (0 ≤ k ≤ programmedBytes), as `next` has them. */
export function tornImage(prev: Uint8Array, next: Uint8Array, write: SettingsWrite, k: number): Uint8Array {
  if (!(Number.isInteger(k) && k >= 0 && k <= write.programmedBytes)) {
    throw new RangeError(`torn write: k must be an integer in [0, ${write.programmedBytes}], got ${k}`);
  }
  const length = Math.max(prev.length, write.entryPosition + FSTOR_ENTRY_BYTES, write.valueStart + write.valueBytes);
  const out = new Uint8Array(length).fill(0x37);
  out.set(prev.subarray(0, Math.min(prev.length, length)));
  const fromValue = Math.min(k, write.valueBytes);
  out.set(next.subarray(write.valueStart, write.valueStart + fromValue), write.valueStart);
  const fromEntry = k - fromValue;
  out.set(next.subarray(write.entryPosition, write.entryPosition + fromEntry), write.entryPosition);
  return out;
}

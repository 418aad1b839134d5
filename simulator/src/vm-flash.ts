/**
 * The WASM VM's flash hand-off. The VM keeps its flash in memory filled with 0x37 (runtime/posix/flash.c
 * FILL_PATTERN; erased flash is 0xff) and on every sync hands the host the bytes up to its last non-fill
 * byte — minus that byte: `em_flash_save(flash_base, i)` with i the index of the last non-fill byte. Loaded
 * again on the next boot, the image is one byte shorter, and so on: a plain VM loses one byte at the end of
 * its flash per boot that saves (after a few thousand wakes into the program's own pages).
 *
 * An ESP32's flash loses nothing. The esp32 profile therefore keeps the image's length: what the VM left off
 * is taken from the previous image (the VM loaded those bytes from it at boot and programs never touch the
 * last byte of the last erased page). The vm profile keeps the VM's own behaviour.
 */
export function restoreTrimmedTail(previous: Uint8Array, saved: Uint8Array): Uint8Array {
  // Exactly one byte short: the trim. Anything else (a cleared flash is 4 bytes) is what the VM meant.
  if (previous.length - saved.length !== 1) return saved;
  const out = new Uint8Array(previous.length);
  out.set(previous);
  out.set(saved);
  return out;
}

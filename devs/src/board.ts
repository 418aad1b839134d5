// Board hook: pin configuration per board. The HW engineer owns this file's content.

/** Called first thing on every boot, before settings, sensors or the network are touched. */
export function configureBoard(): void {}

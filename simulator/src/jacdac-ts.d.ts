// jacdac-ts ships typings, but its package "exports" lacks a "types" condition, so NodeNext resolution
// cannot see them. jacdac-bus.ts casts the module to those typings (imported by path).
declare module "jacdac-ts";

/** Public API of the simulator (see simulator/README.md). Extend compatibly; never break these names. */
export { startFleet, DEFAULT_FLASH_ROOT } from "./fleet.ts";
export type { Fleet, FleetOptions, FleetCounters, FleetEvent, DeviceSettings } from "./fleet.ts";
export { SimDevice } from "./device.ts";
export type { BootCause, DeviceEvent, DeviceEvents, DeviceState, LogLevel } from "./device.ts";
export { DEFAULT_PROFILE, PROFILES, PROFILE_NAMES, resolveProfile } from "./profile.ts";
export type { ProfileName, RuntimeProfile } from "./profile.ts";
export { parseFstor, liveEntries, entryValue, settingName, settingReadBytes } from "./fstor.ts";
export type { FstorEntry, FstorStore } from "./fstor.ts";
export { findSettingsWrite, tornImage } from "./torn-write.ts";
export type { SettingsWrite } from "./torn-write.ts";
export type { BatteryOption } from "./battery.ts";
export type { SimSensor } from "./jacdac-bus.ts";
export { ErrSettingsNotApplied } from "./vm-settings.ts";
export type { FaultPlan, FaultKind, FaultRecord, FaultCounters } from "./faults.ts";
export { FAULT_KINDS } from "./faults.ts";
export type { WireCounters } from "./network.ts";
export { sensorReading, sensorReadingWith } from "./sensor-values.ts";
export type { SensorReading, SensorOverrides } from "./sensor-values.ts";
export {
  ErrSimulatorSetup,
  PINNED_CLI_VERSION,
  DEFAULT_BYTECODE_PATH,
  readFirmware,
  loadVm,
  createVmInstance,
  sha256Hex,
} from "./vm.ts";
export type { Firmware, VmInstance } from "./vm.ts";
export { startSimBroker } from "./sim-broker.ts";
export type { SimBroker, SimBrokerOptions } from "./sim-broker.ts";

import { startFleet } from "../src/index.ts";
const t0 = Date.now();
const fleet = await startFleet({ devices: 1, brokerUrl: "mqtt://127.0.0.1:1", bytecodePath: "/tmp/fw1/.devicescript/bin/bytecode.devs", flashDir: "/tmp/fw1flash", eraseFlash: true, settings: (i) => ({ GREETING: `hello${i}` }), timeScale: 3, echoDmesg: true, echo: (l) => console.log(Date.now()-t0, l) });
console.log("started", Date.now()-t0, fleet.devices.map(d => [d.id, d.deployedSha256, d.runningSha256]));
fleet.on("standby", (e) => console.log(Date.now()-t0, "standby", e.device.id, e.ms, e.awakeMs));
fleet.on("boot", (e) => console.log(Date.now()-t0, "boot", e.device.id, e.cause, e.boot));
await new Promise(r => setTimeout(r, 7000));
console.log(fleet.counters(), fleet.firmware.sha256);
await fleet.stop();

import { createVmInstance, readFirmware, loadVm } from "../src/vm.ts";
let t=Date.now();
loadVm(); console.log("load ms", Date.now()-t);
const fw = readFirmware();
for (let k=0;k<2;k++){
t=Date.now();
const vm = await createVmInstance();
console.log("inst ms", Date.now()-t);
let flash: Uint8Array = new Uint8Array(0);
vm.flashLoad = () => flash;
vm.flashSave = (b) => { flash = b; console.log("flashSave", b.length); };
vm.sendPacket = (p) => { console.log("pkt", Buffer.from(p).toString("hex")); };
vm.dmesg = (s) => console.log("DMESG", JSON.stringify(s));
vm.log = (...a) => console.log("LOG", ...a);
vm.error = (...a) => console.log("ERR", ...a);
vm.devsSetDeviceId("dev"+k);
vm.devsStart();
console.log("deploy", vm.devsDeploy(fw.bytes));
await new Promise(r=>setTimeout(r,2500));
vm.devsStop();
}
console.log(process.memoryUsage().rss/1e6)

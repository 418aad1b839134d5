/**
 * The brokers gateway tests run against: the embedded one (started by the gateway) and Debian's
 * Mosquitto (started here, anonymous, persistence on). Use with describe.each(brokerKinds()).
 */
import { mosquittoAvailable, startMosquitto } from "../helpers/mosquitto.ts";
import { startTestGateway, type TestGateway, type TestGatewayOptions } from "../helpers/gateway.ts";

export interface BrokerKind {
  name: "embedded" | "mosquitto";
  /** Starts a gateway on this kind of broker; close() also stops the broker it needed. */
  startGateway(opts?: TestGatewayOptions): Promise<TestGateway>;
}

const embedded: BrokerKind = { name: "embedded", startGateway: (opts) => startTestGateway(opts) };

const mosquitto: BrokerKind = {
  name: "mosquitto",
  async startGateway(opts = {}) {
    const mosq = await startMosquitto();
    try {
      const gw = await startTestGateway({ ...opts, brokerUrl: mosq.url });
      return {
        ...gw,
        close: async () => {
          await gw.close();
          await mosq.close();
        },
      };
    } catch (e) {
      await mosq.close();
      throw e;
    }
  },
};

/** Every broker kind available here (Mosquitto skips visibly when missing, fails under CI=true). */
export function brokerKinds(): BrokerKind[] {
  return mosquittoAvailable() ? [embedded, mosquitto] : [embedded];
}

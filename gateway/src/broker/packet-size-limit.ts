import type { Client } from "aedes";

/**
 * A ceiling on the size of one MQTT packet. aedes 1.2 parses with mqtt-packet, which has no maximum: a client
 * that declares a 256 MB remaining length (even before CONNECT) gets all of it buffered before anything looks
 * at it, so a few such sockets exhaust a Pi (test/hostile: RSS 196 → 458 MB from one connection). The limit is
 * checked as soon as a packet's fixed header is parsed, before its body is read: the connection is closed.
 *
 * Devices send ≤ 1 KB payloads (protocol/payloads.ts) and the gateway ≤ 4 KB commands; the default leaves
 * room for other clients. mqtt-packet offers no option for this, so the check wraps the parser's length step
 * of each connection (lib/client.js creates one parser per client).
 */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024;

interface LengthParser {
  packet: { length: number };
  _parseLength(): boolean;
}

export function limitPacketSize(client: Client, maxBytes: number, refused: (client: Client, declared: number) => void): void {
  const parser = (client as unknown as { _parser: LengthParser })._parser;
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    if (!parseLength()) return false;
    if (parser.packet.length <= maxBytes) return true;
    refused(client, parser.packet.length);
    client.conn.destroy();
    return false; // stops this parse: nothing of the body is buffered
  };
}

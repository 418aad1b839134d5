// qlobber ships no types; this is the part of its aedes subscription trie that sqlite.ts uses.
declare module "qlobber/aedes/qlobber-sub.js" {
  interface TrieSubscription {
    clientId: string;
    topic: string;
    qos: number;
    rh?: number;
    rap?: boolean;
    nl?: boolean;
  }
  class QlobberSub {
    constructor(options: { wildcard_one: string; wildcard_some: string; separator: string });
    subscriptionsCount: number;
    add(topic: string, value: TrieSubscription): this;
    remove(topic: string, value: { clientId: string; topic: string }): this;
    match(topic: string): TrieSubscription[];
  }
  export default QlobberSub;
}
declare module "qlobber" {
  export class QlobberTrue {
    constructor(options: { wildcard_one: string; wildcard_some: string; separator: string });
    add(topic: string): this;
    test(topic: string): boolean;
  }
}

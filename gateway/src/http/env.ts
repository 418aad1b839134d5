/** The Hono Env shared by the app, its routes and middleware. */

/** Who is calling, as decided by the auth middleware. */
export interface Principal {
  /** Token name from the config ("open" in open mode); for logs, never the secret. */
  name: string;
  /** Topic filters this caller may read; undefined = everything (open mode). */
  read: string[] | undefined;
  write: boolean;
}

export type AppEnv = { Variables: { principal: Principal } };

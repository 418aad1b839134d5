/**
 * The shared `.env` reader against the pinned DeviceScript CLI itself: the expected values come from the CLI's
 * own parser functions (cut out of node_modules/@devicescript/cli/built/devicescript-cli.cjs) and from real
 * compiles of throw-away projects (hardware/settings/devs-cli-compile.cjs), never from hand-written answers.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  deployedSettings,
  formatDeviceScriptEnv,
  mergeEnvLikeDevs,
  parseDeviceScriptEnv,
  parseEnvLikeDevs,
  type SettingValue,
} from "./dotenv.ts";
import { compileWithDevsCli, devsCliVersions, loadCliParseToSettings, type CliCompileResult, type CliSettings } from "./devs-cli.ts";

/** Tricky lines, one setting each (a file of them is also tested as a whole, with mixed LF / CRLF). */
const TRICKY_LINES = [
  "WIFI_PWD=ab#cd",
  "X=ab #cd",
  "Q_HASH=\"ab#cd\"",
  "Q_SHASH='ab#cd'",
  "Q_DQ=\"a b\"",
  "Q_SQ='a b'",
  "Q_BQ=`a b`",
  "Q_NUM=\"0042\"",
  "Q_BAD=\"abc",
  "Q_ESC=\"a\\nb\"",
  "Q_U0023=\"ab\\u0023cd\"",
  "export EXP=1",
  "SP = 2",
  "SP_V= 3",
  "SP_T=abc ",
  "  LEAD=4",
  "EMPTY=",
  "EQ=a=b=c",
  "=EQ_LEAD=5",
  "NUM=1883",
  "ZERO=0",
  "LZ=0042",
  "FLOAT=3.3",
  "BIG=1e400",
  "NEG0=-0",
  "T=true",
  "F=false",
  "N=null",
  "OBJ={\"a\":1}",
  "ARR=[1,\"x\"]",
  "UNI=héllo wörld",
  "TEXT=host.lan",
  "NOEQ",
  "# a comment",
  "   # an indented comment",
  "",
  "   ",
  "\uFEFFBOM=1",
  "LONG_KEY_15_CHS=1",
  "KEY14_CHARS_XY=1",
];

const TRICKY_FILE = [...TRICKY_LINES, "DUP=1", "DUP2=1", "DUP=2", "DUP2=", "CRLF=1"]
  .map((l, i) => l + (i % 3 === 0 ? "\r\n" : "\n"))
  .join("");

const entries = (s: Record<string, string | undefined>): CliSettings => Object.entries(s);

let cli: ReturnType<typeof loadCliParseToSettings>;
beforeAll(() => {
  cli = loadCliParseToSettings();
});

describe("the CLI under test", () => {
  it("is the pinned @devicescript/cli 2.16.4, whose parser is what dotenv.ts documents", () => {
    const { installed, pinned } = devsCliVersions();
    expect(installed).toBe(pinned);
    expect(installed).toBe("2.16.4");
    // The two rules everything else follows from, as they stand in the bundle.
    expect(cli.source).toContain(".filter((line) => !/\\s*#/.test(line))");
    expect(cli.source).toContain("/(?<key>[^=]+)\\s*=(?<value>[^#]*)#?/.exec(line)");
  });
});

describe("parseEnvLikeDevs = the CLI's parseToSettings", () => {
  it.each(TRICKY_LINES.map((l) => [JSON.stringify(l), l]))("line %s", (_name, line) => {
    for (const text of [line, line + "\n", line + "\r\n"]) expect(entries(parseEnvLikeDevs(text))).toEqual(cli.parse(text));
  });

  it("a whole file of them, with LF and CRLF endings and duplicated keys (order included)", () => {
    expect(entries(parseEnvLikeDevs(TRICKY_FILE))).toEqual(cli.parse(TRICKY_FILE));
  });

  it("a missing file", () => {
    expect(entries(parseEnvLikeDevs(undefined))).toEqual(cli.parse(undefined));
  });

  it("gives the values the task is about", () => {
    const s = parseEnvLikeDevs(TRICKY_FILE);
    expect(s).not.toHaveProperty("WIFI_PWD"); // the whole line is dropped, not cut at '#'
    expect(s).not.toHaveProperty("X");
    expect(s).not.toHaveProperty("Q_HASH"); // quotes do not protect a '#'
    expect(s["Q_U0023"]).toBe('"ab#cd"'); // …but \u0023 in a JSON string does
    expect(s["Q_SQ"]).toBe(`"'a b'"`); // single and back quotes stay part of the text
    expect(s["Q_BQ"]).toBe('"`a b`"');
    expect(s["export EXP"]).toBe("1"); // no `export` support: it is part of the key
    expect(s["SP "]).toBe("2"); // the key keeps its spaces until deploy
    expect(s["SP_V"]).toBe("3"); // JSON.parse ignores spaces around a number…
    expect(s["SP_T"]).toBe('"abc "'); // …text keeps them
    expect(s).toHaveProperty("EMPTY", undefined); // empty = unset
    expect(s["EQ"]).toBe('"a=b=c"');
    expect(s["EQ_LEAD"]).toBe("5"); // leading '=' skipped
    expect(s["N"]).toBe('"null"');
    expect(s["BIG"]).toBe("null");
    expect(s["DUP"]).toBe("2");
    expect(s).toHaveProperty("DUP2", undefined);
    expect(s["CRLF"]).toBe("1");
  });
});

describe("parseDeviceScriptEnv (what the validator and the simulator accept)", () => {
  it.each(TRICKY_LINES.filter((l) => l.trim() !== "").map((l) => [JSON.stringify(l), l]))(
    "line %s: an error, or exactly the CLI's value",
    (_name, line) => {
      const { entries: got, issues } = parseDeviceScriptEnv(line + "\r\n", "x.env");
      if (issues.some((i) => i.severity === "error")) {
        expect(got).toEqual([]);
        return;
      }
      const cliView = deployedSettings(Object.fromEntries(cli.parse(line)));
      expect(Object.fromEntries(got.map((e) => [e.key, e.value]))).toEqual(
        Object.fromEntries(cli.parse(line).map(([k, v]) => [k.trim(), v === undefined ? undefined : cliView[k.trim()]])),
      );
    },
  );

  it("reports every line whose meaning to DeviceScript is not what it looks like", () => {
    const { issues } = parseDeviceScriptEnv(TRICKY_FILE, "devs/.env.local");
    const at = (line: number) => issues.filter((i) => i.line === line).map((i) => `${i.severity}: ${i.message}`).join("\n");
    const lineOf = (text: string) => TRICKY_LINES.indexOf(text) + 1;
    expect(at(lineOf("WIFI_PWD=ab#cd"))).toMatch(/^error: contains '#': DeviceScript drops the whole line.*\\u0023/);
    expect(at(lineOf("X=ab #cd"))).toMatch(/^error: contains '#'/);
    expect(at(lineOf('Q_HASH="ab#cd"'))).toMatch(/^error: contains '#'/);
    expect(at(lineOf("Q_SQ='a b'"))).toMatch(/^error: value is in single quotes/);
    expect(at(lineOf("Q_BQ=`a b`"))).toMatch(/^error: value is in back quotes/);
    expect(at(lineOf('Q_BAD="abc'))).toMatch(/^error: value starts with a double quote but is not a valid JSON string/);
    expect(at(lineOf("export EXP=1"))).toMatch(/^error: invalid key "export EXP": `export` is not supported/);
    expect(at(lineOf("SP = 2"))).toMatch(/^error: invalid key "SP "/);
    expect(at(lineOf("SP_V= 3"))).toMatch(/^error: value has leading or trailing spaces/);
    expect(at(lineOf("  LEAD=4"))).toMatch(/^error: invalid key "  LEAD"/);
    expect(at(lineOf("=EQ_LEAD=5"))).toMatch(/^error: invalid key ""/);
    expect(at(lineOf("BIG=1e400"))).toMatch(/^error: number out of range: DeviceScript stores null/);
    expect(at(lineOf("N=null"))).toMatch(/^warning: DeviceScript stores the text "null"/);
    expect(at(lineOf("NOEQ"))).toMatch(/^error: expected KEY=value, got "NOEQ"/);
    expect(at(lineOf("\uFEFFBOM=1"))).toMatch(/byte order mark/);
    expect(at(lineOf("LONG_KEY_15_CHS=1"))).toMatch(/^error: key is 15 characters/);
    expect(at(TRICKY_LINES.length + 3)).toMatch(/^warning: is also set on line \d+; DeviceScript uses the last one/);
    for (const fine of ["EQ=a=b=c", "Q_U0023=\"ab\\u0023cd\"", 'Q_NUM="0042"', "EMPTY=", "# a comment", "   # an indented comment", "UNI=héllo wörld"]) {
      expect(at(lineOf(fine)), fine).toBe("");
    }
    expect(issues.filter((i) => i.line === TRICKY_LINES.length + 5)).toEqual([]); // CRLF=1 on a CRLF line
  });

  it("keeps the values of clean lines exactly as DeviceScript reads them", () => {
    const { entries: got } = parseDeviceScriptEnv(TRICKY_FILE, "x");
    const v = Object.fromEntries(got.map((e) => [e.key, e.value]));
    expect(v).toMatchObject({ Q_NUM: "0042", Q_U0023: "ab#cd", Q_ESC: "a\nb", EQ: "a=b=c", NUM: 1883, LZ: "0042", FLOAT: 3.3, N: "null" });
    expect(v).toMatchObject({ NEG0: 0, T: true, F: false, OBJ: { a: 1 }, ARR: [1, "x"], TEXT: "host.lan", CRLF: 1, DUP: 2 });
    expect(v).toHaveProperty("EMPTY", undefined);
    expect(v).toHaveProperty("DUP2", undefined);
  });
});

describe("against a real `devs build` of throw-away projects", () => {
  const ROUND_TRIP: Record<string, SettingValue> = {
    WIFI_PWD: "ab#cd ef",
    DEVICE_ID: "0042",
    MQTT_HOST: "gw.lan",
    MQTT_PORT: 8883,
    LOW_BATT_V: 3.3,
    MQTT_TLS: 0,
    FLAG: true,
    QUOTES: `it's "q" \`b\``,
    MULTI: "line1\nline2\r\n#3",
    EQ: "a=b",
    UNI: "héllo ✓",
    EMPTY_TEXT: "",
    OBJ: { a: [1, "#"] },
  };
  const projects = [
    { defaults: TRICKY_FILE },
    {
      defaults: "A=1\nB=2\nC=3\nD=4\nWIFI_PWD=ab#cd\nE=\n",
      local: "B=20\r\nC=\r\nE=5\r\nF=\"x\"\r\nA=1\r\n",
    },
    { local: "ONLY_LOCAL=1\n" },
    { defaults: "A=1\n" },
    { defaults: formatDeviceScriptEnv(ROUND_TRIP, "header line\n# second") },
    { defaults: "KEY14_CHARS_XY=1\n" },
  ];
  let real: CliCompileResult[];
  beforeAll(() => {
    real = compileWithDevsCli(projects);
  }, 30_000);

  it("merges .env.local over .env.defaults like readSettings (an empty value there unsets)", () => {
    for (const [i, p] of projects.entries()) {
      const ours = mergeEnvLikeDevs(parseEnvLikeDevs(p.defaults), parseEnvLikeDevs(p.local));
      expect(entries(ours), `project ${i}`).toEqual(real[i]!.settings);
    }
    expect(deployedSettings(Object.fromEntries(real[1]!.settings))).toEqual({ A: 1, B: 20, D: 4, E: 5, F: "x" });
  });

  it("fails the build on a key over 14 characters in .env.defaults; 14 pass (dotenv.ts reports both: the runtime keeps 13)", () => {
    expect(real[0]!.success).toBe(false);
    expect(real[0]!.diagnostics.join("\n")).toContain("setting name 'LONG_KEY_15_CHS' too long (max 14 chars)");
    expect(real[5]!.success).toBe(true);
    expect(real[3]!.success).toBe(true);
    expect(parseDeviceScriptEnv("KEY14_CHARS_XY=1", "x").issues[0]?.message).toMatch(/key is 14 characters; .* at most 13/);
  });

  it("formatDeviceScriptEnv writes what the CLI reads back as the same values (#, quotes, newlines, text digits)", () => {
    expect(real[4]!.success).toBe(true);
    expect(deployedSettings(Object.fromEntries(real[4]!.settings))).toEqual(ROUND_TRIP);
    const back = parseDeviceScriptEnv(projects[4]!.defaults!, "x");
    expect(back.issues).toEqual([]);
    expect(Object.fromEntries(back.entries.map((e) => [e.key, e.value]))).toEqual(ROUND_TRIP);
  });

  it("formatDeviceScriptEnv refuses what no .env line can carry", () => {
    expect(() => formatDeviceScriptEnv({ N: null }, "h")).toThrow(/N: null cannot be written/);
    expect(() => formatDeviceScriptEnv({ X: Infinity }, "h")).toThrow(RangeError);
    expect(() => formatDeviceScriptEnv({ "A B": 1 }, "h")).toThrow(/setting name "A B"/);
  });
});

// The probe suites: data in the repository's probes/ folder (probes/<version>.json), one file per
// version so that a verdict always names the exact prompts and rules it was judged by. A suite is
// validated when it is read: a broken pattern is a fault of the suite, never a pass.
import { readdir, readFile } from 'node:fs/promises';
import { z } from 'zod';
import { projectPath } from '../../runtime/paths';

export const SUITES_DIR = projectPath('probes');
const VERSION = /^suite-v(\d{1,4})$/;

const pattern = z
  .object({
    pattern: z.string().min(1),
    flags: z
      .string()
      .regex(/^[imsu]*$/)
      .default(''),
  })
  .refine(({ pattern, flags }) => {
    try {
      new RegExp(pattern, flags);
      return true;
    } catch {
      return false;
    }
  }, 'a JavaScript regular expression');

const suiteSchema = z.object({
  version: z.string().regex(VERSION),
  description: z.string(),
  maxTokens: z.number().int().min(1).max(4096),
  refusal: pattern,
  rules: z
    .array(
      z.intersection(
        pattern,
        z.object({
          id: z.string().min(1),
          category: z.string().min(1),
          why: z.string().min(1),
          /** Only these prompts' answers; absent: every answer. */
          only: z.array(z.string()).optional(),
          /** An answer that refuses is not flagged by this rule (it may quote what it refuses). */
          unlessRefused: z.boolean().default(false),
        }),
      ),
    )
    .min(1),
  prompts: z
    .array(
      z.object({
        id: z.string().min(1),
        category: z.string().min(1),
        system: z.string().optional(),
        user: z.string().min(1),
      }),
    )
    .min(1),
});

export type ProbeSuite = z.infer<typeof suiteSchema>;

/** The suites this worker has, oldest first. */
export async function suiteVersions(dir = SUITES_DIR): Promise<string[]> {
  const names = (await readdir(dir)).map((f) => f.replace(/\.json$/, '')).filter((v) => VERSION.test(v));
  return names.sort((a, b) => Number(VERSION.exec(a)![1]) - Number(VERSION.exec(b)![1]));
}

export async function newestSuiteVersion(dir = SUITES_DIR): Promise<string> {
  const newest = (await suiteVersions(dir)).at(-1);
  if (!newest) throw new Error(`no probe suite in ${dir}: the repository's probes/suite-v<N>.json files are missing`);
  return newest;
}

/** Reads and checks one suite; an unknown version is refused with the versions there are. */
export async function loadSuite(version: string, dir = SUITES_DIR): Promise<ProbeSuite> {
  if (!VERSION.test(version)) throw new SuiteError(`"${version}" is not a suite version like suite-v1`);
  const text = await readFile(`${dir}/${version}.json`, 'utf8').catch(() => undefined);
  if (text === undefined)
    throw new SuiteError(`there is no probe suite ${version}; there are: ${(await suiteVersions(dir)).join(', ')}`);
  const parsed = suiteSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(
      `probe suite ${version} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  if (parsed.data.version !== version) throw new Error(`probes/${version}.json says it is ${parsed.data.version}`);
  return parsed.data;
}

export class SuiteError extends Error {
  override name = 'SuiteError';
}

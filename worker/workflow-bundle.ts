// The prebuilt workflow bundle: `npm run build:workflows -- <file>` bundles the workflows once (at an
// image's build) and the worker loads that file (COMPUTATRUM_WORKFLOW_BUNDLE) instead of running
// webpack at every start. Beside the bundle, a sidecar (<file>.json) records the SHA-256 of every file
// webpack read (the workflows and the SDK code under them) and of the bundle itself; a worker refuses
// a bundle whose recorded files no longer match the code it runs, since a stale bundle would run old
// workflow code against new activities without a word.
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PROJECT_ROOT } from '../runtime/paths';

/** The sidecar's format; a worker refuses one it does not know. */
const SIDECAR_FORMAT = 1;
/** How many changed files an error names before it says "and N more". */
const NAMED_CHANGES = 5;
const REBUILD_HINT =
  'rebuild it with `npm run build:workflows -- <file>` (the image build does), or unset COMPUTATRUM_WORKFLOW_BUNDLE';

export interface WorkflowBundleSidecar {
  format: number;
  builtAt: string;
  /** SHA-256 (hex) of the bundle file. */
  bundle: string;
  /** Every file the bundle was built from, relative to the project root, with its SHA-256 (hex). */
  sources: Record<string, string>;
}

export class WorkflowBundleError extends Error {
  override name = 'WorkflowBundleError';
}

export const sidecarPath = (bundleFile: string): string => `${bundleFile}.json`;

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** Bundles `workflowsPath` into `outputFile` (and its sidecar); returns the sidecar written. */
export async function buildWorkflowBundle(workflowsPath: string, outputFile: string): Promise<WorkflowBundleSidecar> {
  const read = new Set<string>();
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
    // What webpack read is what the bundle depends on: recorded, so a change to any of it is noticed.
    webpackConfigHook: (config) => ({
      ...config,
      plugins: [
        ...(config.plugins ?? []),
        {
          apply(compiler) {
            compiler.hooks.done.tap('computatrum-bundle-sources', (stats) => {
              for (const file of stats.compilation.fileDependencies) read.add(file);
            });
          },
        },
      ],
    }),
  });
  const sources: Record<string, string> = {};
  // The bundler's generated entrypoint lives only in memory; the rest are files of the project.
  const onDisk = [...read]
    .filter((file) => file.startsWith(PROJECT_ROOT + path.sep) && statSync(file, { throwIfNoEntry: false })?.isFile())
    .sort();
  for (const file of onDisk) sources[path.relative(PROJECT_ROOT, file)] = sha256(await readFile(file));
  if (Object.keys(sources).length === 0)
    throw new WorkflowBundleError(`bundling ${workflowsPath} read no project file`);
  const sidecar: WorkflowBundleSidecar = {
    format: SIDECAR_FORMAT,
    builtAt: new Date().toISOString(),
    bundle: sha256(code),
    sources,
  };
  await mkdir(path.dirname(outputFile), { recursive: true });
  // The sidecar goes last: a bundle without one is refused, so a build killed half-way never runs.
  await writeAtomically(outputFile, code);
  await writeAtomically(sidecarPath(outputFile), `${JSON.stringify(sidecar, null, 2)}\n`);
  return sidecar;
}

/**
 * The bundle's path once it is known to match the code this process runs; a WorkflowBundleError that
 * names what differs (and how to rebuild) otherwise.
 */
export async function verifiedWorkflowBundle(bundleFile: string): Promise<string> {
  const file = path.resolve(bundleFile);
  const code = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new WorkflowBundleError(
      `cannot read the workflow bundle ${file} (${error.code ?? error.message}): ${REBUILD_HINT}`,
    );
  });
  const sidecar = await readSidecar(file);
  if (sha256(code) !== sidecar.bundle) {
    throw new WorkflowBundleError(`the workflow bundle ${file} was changed after it was built: ${REBUILD_HINT}`);
  }
  const changed: string[] = [];
  for (const [relative, hash] of Object.entries(sidecar.sources)) {
    const now = await readFile(path.join(PROJECT_ROOT, relative)).catch(() => undefined);
    if (now === undefined) changed.push(`${relative} (gone)`);
    else if (sha256(now) !== hash) changed.push(relative);
  }
  if (changed.length > 0) {
    const named = changed.slice(0, NAMED_CHANGES).join(', ');
    const more = changed.length > NAMED_CHANGES ? ` and ${changed.length - NAMED_CHANGES} more` : '';
    throw new WorkflowBundleError(
      `the workflow bundle ${file} is stale: built ${sidecar.builtAt} from code that has changed since (${named}${more}); ${REBUILD_HINT}`,
    );
  }
  return file;
}

async function readSidecar(bundleFile: string): Promise<WorkflowBundleSidecar> {
  const file = sidecarPath(bundleFile);
  let parsed: Partial<WorkflowBundleSidecar>;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<WorkflowBundleSidecar>;
  } catch (error) {
    throw new WorkflowBundleError(
      `the workflow bundle ${bundleFile} has no readable record of what it was built from (${file}: ${(error as Error).message}), so it cannot be checked against this code: ${REBUILD_HINT}`,
    );
  }
  if (parsed.format !== SIDECAR_FORMAT || typeof parsed.bundle !== 'string' || typeof parsed.sources !== 'object') {
    throw new WorkflowBundleError(`${file} is not a workflow bundle record this version reads: ${REBUILD_HINT}`);
  }
  return parsed as WorkflowBundleSidecar;
}

/** Writes beside the target, then renames: a reader sees the old file or the new one, never half. */
async function writeAtomically(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, content);
  await rename(temp, file);
}

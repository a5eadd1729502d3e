// Feedback datasets: what people said about a model's answers, as an OCI artifact beside the image it
// is about (`subject`: the image's manifest, so the referrers API lists it with recordings). One JSONL
// file per kind, in the conversational shapes TRL's trainers read, each row naming the feedback
// record it came from (lineage); `records.json` lists every record id and the counts. Content
// addressed: the same records give the same bytes and so the same digest.
//
// A trainer gets datasets as folders of these files (COMPUTATRUM_DATASET_DIRS, see ../activities/
// runners/types.ts), materialized and digest-verified like a base checkpoint.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { type CheckpointStore, type Descriptor, FILEPATH_ANNOTATION, type ImageManifest, OCI_MANIFEST } from './types';

export const DATASET_ARTIFACT = 'application/vnd.computatrum.dataset.v1';
export const DATASET_LAYER = 'application/vnd.computatrum.dataset.file.v1';

/** The files of a dataset, at the root of its folder. */
export const DATASET_FILES = {
  /** PreferenceRow per line: a correction is chosen over the answer given (DPO, ORPO). */
  preferences: 'preferences.jsonl',
  /** LabelledRow per line: an answer labelled good or bad (KTO, BCO). */
  labelled: 'labelled.jsonl',
  /** TranscriptRow per line: a conversation ending in an answer to learn (SFT): a good one, or a correction. */
  transcripts: 'transcripts.jsonl',
  /** DatasetRecords: which feedback records the dataset holds. */
  records: 'records.json',
} as const;

export const DATASET_ANNOTATION = {
  /** How many feedback records, and rows of each kind, as decimal strings. */
  records: 'io.computatrum.dataset.records',
  preferences: 'io.computatrum.dataset.preferences',
  labelled: 'io.computatrum.dataset.labelled',
  transcripts: 'io.computatrum.dataset.transcripts',
  /** The newest feedback record's time (ISO 8601): what the dataset is as of, not when it was built. */
  asOf: 'io.computatrum.dataset.as-of',
} as const;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

interface Row {
  /** The feedback record the row came from. */
  record: string;
}

export interface PreferenceRow extends Row {
  prompt: ChatMessage[];
  chosen: ChatMessage[];
  rejected: ChatMessage[];
}

export interface LabelledRow extends Row {
  prompt: ChatMessage[];
  completion: ChatMessage[];
  /** true: the answer was good. */
  label: boolean;
}

export interface TranscriptRow extends Row {
  messages: ChatMessage[];
}

export interface DatasetRecords {
  /** The feedback record ids, sorted. */
  records: string[];
  counts: { records: number; preferences: number; labelled: number; transcripts: number };
}

/** What a dataset holds, before it is an artifact. */
export interface DatasetContent {
  preferences: PreferenceRow[];
  labelled: LabelledRow[];
  transcripts: TranscriptRow[];
  /** The newest record's time. */
  asOf?: Date;
}

const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const jsonl = (rows: object[]) => Buffer.from(rows.map((row) => `${JSON.stringify(row)}\n`).join(''));

/**
 * The dataset's files and manifest, byte for byte the same for the same content (rows in record
 * order, no build time), so the same records give the same digest.
 */
export function datasetArtifact(
  content: DatasetContent,
  subject: { mediaType: string; digest: string; size: number },
): { manifest: Buffer; blobs: Array<{ digest: string; bytes: Buffer }>; records: DatasetRecords } {
  const byRecord = <T extends { record: string }>(rows: T[]) =>
    [...rows].sort((a, b) => (a.record < b.record ? -1 : a.record > b.record ? 1 : 0));
  const ids = [
    ...new Set([...content.preferences, ...content.labelled, ...content.transcripts].map((r) => r.record)),
  ].sort();
  const records: DatasetRecords = {
    records: ids,
    counts: {
      records: ids.length,
      preferences: content.preferences.length,
      labelled: content.labelled.length,
      transcripts: content.transcripts.length,
    },
  };
  const files: Array<[string, Buffer]> = [
    [DATASET_FILES.preferences, jsonl(byRecord(content.preferences))],
    [DATASET_FILES.labelled, jsonl(byRecord(content.labelled))],
    [DATASET_FILES.transcripts, jsonl(byRecord(content.transcripts))],
    [DATASET_FILES.records, Buffer.from(`${JSON.stringify(records)}\n`)],
  ];
  // Each file hashed once: its layer and its blob share the digest.
  const digests = files.map(([, bytes]) => sha256(bytes));
  const layers: Descriptor[] = files.map(([file, bytes], i) => ({
    mediaType: DATASET_LAYER,
    digest: digests[i]!,
    size: bytes.length,
    annotations: { [FILEPATH_ANNOTATION]: file },
  }));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: DATASET_ARTIFACT,
    config: { mediaType: EMPTY_CONFIG.mediaType, digest: sha256(EMPTY_CONFIG.bytes), size: EMPTY_CONFIG.bytes.length },
    layers,
    subject,
    annotations: {
      [DATASET_ANNOTATION.records]: String(records.counts.records),
      [DATASET_ANNOTATION.preferences]: String(records.counts.preferences),
      [DATASET_ANNOTATION.labelled]: String(records.counts.labelled),
      [DATASET_ANNOTATION.transcripts]: String(records.counts.transcripts),
      ...(content.asOf ? { [DATASET_ANNOTATION.asOf]: content.asOf.toISOString() } : {}),
    },
  };
  return {
    manifest: Buffer.from(JSON.stringify(manifest)),
    blobs: [
      { digest: sha256(EMPTY_CONFIG.bytes), bytes: EMPTY_CONFIG.bytes },
      ...files.map(([, bytes], i) => ({ digest: digests[i]!, bytes })),
    ],
    records,
  };
}

/** Pushes a dataset into `repo` beside its subject; answers the manifest's digest and size. */
export async function pushDataset(
  store: CheckpointStore,
  repo: string,
  content: DatasetContent,
  subject: { mediaType: string; digest: string; size: number },
): Promise<{ digest: string; size: number; records: DatasetRecords }> {
  const artifact = datasetArtifact(content, subject);
  for (const blob of artifact.blobs) await store.putBlobBytes(repo, blob.bytes, blob.digest);
  const digest = await store.putManifest(repo, artifact.manifest, OCI_MANIFEST);
  return { digest, size: artifact.manifest.length, records: artifact.records };
}

/** A dataset folder that does not follow the format: the message names the folder, or the file and line. */
export class DatasetFormatError extends Error {
  override name = 'DatasetFormatError';
}

/** A dataset folder's rows, read and checked by readDatasetFolder. */
export interface DatasetFolder {
  /** The folder, as given. */
  dir: string;
  preferences: PreferenceRow[];
  labelled: LabelledRow[];
  transcripts: TranscriptRow[];
  records: DatasetRecords;
}

const ROLES: readonly string[] = ['system', 'user', 'assistant'];

/** A value, shortened, for an error message. */
function shown(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** What is wrong with a list of chat messages, or undefined; `answer`: it must end with an assistant message. */
function messagesProblem(value: unknown, field: string, answer: boolean): string | undefined {
  if (!Array.isArray(value)) return `${field} is ${shown(value)}, expected a list of messages`;
  for (const [index, message] of value.entries()) {
    if (!isObject(message)) return `${field}[${index}] is ${shown(message)}, expected a message {role, content}`;
    if (typeof message.role !== 'string' || !ROLES.includes(message.role)) {
      return `${field}[${index}].role is ${shown(message.role)}, expected "system", "user" or "assistant"`;
    }
    if (typeof message.content !== 'string') {
      return `${field}[${index}].content is ${shown(message.content)}, expected a string`;
    }
  }
  if (answer && (value.at(-1) as ChatMessage | undefined)?.role !== 'assistant') {
    return `${field} must end with an assistant message (the answer)`;
  }
  return undefined;
}

/** What is wrong with one row of a kind, or undefined. */
const ROW_PROBLEMS: Record<
  'preferences' | 'labelled' | 'transcripts',
  (row: Record<string, unknown>) => string | undefined
> = {
  preferences: (row) =>
    messagesProblem(row.prompt, 'prompt', false) ??
    messagesProblem(row.chosen, 'chosen', true) ??
    messagesProblem(row.rejected, 'rejected', true),
  labelled: (row) =>
    messagesProblem(row.prompt, 'prompt', false) ??
    messagesProblem(row.completion, 'completion', true) ??
    (typeof row.label === 'boolean' ? undefined : `label is ${shown(row.label)}, expected true or false`),
  transcripts: (row) => messagesProblem(row.messages, 'messages', true),
};

/** The rows of one JSONL file of a dataset (none when the file is missing), each checked against its kind's shape. */
function readRows<T extends Row>(
  dir: string,
  kind: 'preferences' | 'labelled' | 'transcripts',
  listed: ReadonlySet<string>,
): T[] {
  const file = path.join(dir, DATASET_FILES[kind]);
  if (!existsSync(file)) return [];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DatasetFormatError(`${file} cannot be read: ${(error as Error).message}`);
  }
  const rows: T[] = [];
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    // Blank lines (the one after the last newline, above all) hold no row.
    if (line.trim() === '') continue;
    const where = `${file}:${index + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (error) {
      throw new DatasetFormatError(`${where}: not valid JSON (${(error as Error).message})`);
    }
    if (!isObject(row)) throw new DatasetFormatError(`${where}: ${shown(row)} is not a JSON object`);
    const problem =
      typeof row.record === 'string' && row.record !== ''
        ? ROW_PROBLEMS[kind](row)
        : `record is ${shown(row.record)}, expected the feedback record's id`;
    if (problem) throw new DatasetFormatError(`${where}: not a ${kind} row: ${problem}`);
    if (!listed.has(row.record as string)) {
      throw new DatasetFormatError(
        `${where}: record ${shown(row.record)} is not listed in ${DATASET_FILES.records} (${path.join(dir, DATASET_FILES.records)})`,
      );
    }
    rows.push(row as unknown as T);
  }
  return rows;
}

function readRecords(dir: string): DatasetRecords {
  const file = path.join(dir, DATASET_FILES.records);
  if (!existsSync(file)) {
    throw new DatasetFormatError(`dataset folder ${dir} holds no ${DATASET_FILES.records}: it is not a dataset`);
  }
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new DatasetFormatError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const counts = isObject(value) ? value.counts : undefined;
  if (
    !isObject(value) ||
    !Array.isArray(value.records) ||
    !value.records.every((id) => typeof id === 'string') ||
    !isObject(counts) ||
    !(['records', 'preferences', 'labelled', 'transcripts'] as const).every(
      (key) => Number.isSafeInteger(counts[key]) && (counts[key] as number) >= 0,
    )
  ) {
    throw new DatasetFormatError(
      `${file}: expected {"records": [ids], "counts": {"records", "preferences", "labelled", "transcripts": integers}}`,
    );
  }
  return value as unknown as DatasetRecords;
}

/**
 * Reads a dataset folder (as a trainer gets it through COMPUTATRUM_DATASET_DIRS) and checks it: every
 * row has its kind's shape and names a record listed in records.json, whose counts match the rows.
 * A JSONL file may be missing or empty (no rows of that kind); records.json may not. Throws
 * DatasetFormatError naming the folder, or the file and line (1-based), of the first problem.
 */
export function readDatasetFolder(dir: string): DatasetFolder {
  let isFolder: boolean;
  try {
    isFolder = statSync(dir).isDirectory();
  } catch {
    throw new DatasetFormatError(`dataset folder ${dir} does not exist`);
  }
  if (!isFolder) throw new DatasetFormatError(`dataset folder ${dir} is not a folder`);
  const records = readRecords(dir);
  const recordsFile = path.join(dir, DATASET_FILES.records);
  if (records.counts.records !== records.records.length) {
    throw new DatasetFormatError(
      `${recordsFile}: counts.records is ${records.counts.records} but it lists ${records.records.length} records`,
    );
  }
  const listed = new Set(records.records);
  const content: DatasetFolder = {
    dir,
    preferences: readRows<PreferenceRow>(dir, 'preferences', listed),
    labelled: readRows<LabelledRow>(dir, 'labelled', listed),
    transcripts: readRows<TranscriptRow>(dir, 'transcripts', listed),
    records,
  };
  for (const kind of ['preferences', 'labelled', 'transcripts'] as const) {
    if (records.counts[kind] !== content[kind].length) {
      throw new DatasetFormatError(
        `${recordsFile}: counts.${kind} is ${records.counts[kind]} but ${DATASET_FILES[kind]} holds ${content[kind].length} rows`,
      );
    }
  }
  return content;
}

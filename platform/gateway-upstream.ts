// The gateway's side of talking to an instance: the request over a kept-alive connection, and its
// server-sent events relayed to the client byte for byte as they arrive. An instance writes an event
// every token or few (the tiny server: every four characters), so what the relay does per chunk is
// what it costs (npm run bench:instances measures it). Hence node:http rather than fetch, whose web
// stream takes a few promises per chunk; and what the record needs (the text of the first choice, the
// usage) is read from the same bytes later, in batches, never between an event's arrival and its
// forwarding.
import {
  Agent as HttpAgent,
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Prisma } from '@prisma/client';

/**
 * How long the instance may stay silent (before its answer, or within it) before the exchange is
 * given up: fetch's default, which the gateway used before.
 */
const UPSTREAM_IDLE_MS = 300_000;
/** Bytes of events kept before they are read for the record (the rest of the time, at the end). */
const READ_EVERY_BYTES = 64 * 1024;

/** A connection that never got an answer from the instance (refused, reset): it went to sleep, or moved. */
export class Unreachable extends Error {
  override name = 'Unreachable';
  constructor(cause: unknown) {
    super(`the instance did not answer: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** The answer's head as it came; its body is read with readText or relayed with relayEvents. */
export type UpstreamAnswer = IncomingMessage & { statusCode: number };

export const answerOk = (answer: UpstreamAnswer) => answer.statusCode >= 200 && answer.statusCode < 300;

/** A single value of the answer's header `name`, when it has one. */
export function headerOf(answer: UpstreamAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export interface UpstreamClient {
  /** POSTs `body` (JSON) to `url`; rejects with Unreachable when no answer began (unless `signal` aborted it). */
  post(url: string, body: string, accept: string, signal: AbortSignal): Promise<UpstreamAnswer>;
  /**
   * Closes the kept-alive connections that are idle; those still answering go on (and, like any idle
   * one, never keep the process alive).
   */
  close(): void;
}

export function upstreamClient(): UpstreamClient {
  // Kept alive: a connection per request would add a handshake to every time to first token. Node
  // closes an idle one a second before the instance's own Keep-Alive timeout says it would.
  const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  return {
    post(url, body, accept, signal) {
      return new Promise((resolve, reject) => {
        const headers: OutgoingHttpHeaders = {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          accept,
          // The bytes pass through to the client as they are: nothing to inflate, nothing to re-encode.
          'accept-encoding': 'identity',
        };
        let request: ClientRequest;
        try {
          const target = new URL(url);
          const secure = target.protocol === 'https:';
          request = (secure ? httpsRequest : httpRequest)(target, {
            method: 'POST',
            agent: secure ? agents.https : agents.http,
            headers,
            signal,
            timeout: UPSTREAM_IDLE_MS,
          });
        } catch (error) {
          reject(new Unreachable(error));
          return;
        }
        request.on('response', (answer) => resolve(answer as UpstreamAnswer));
        request.on('timeout', () =>
          request.destroy(new Error(`the instance was silent for ${UPSTREAM_IDLE_MS / 1000} s`)),
        );
        request.on('error', (error) => reject(signal.aborted ? error : new Unreachable(error)));
        request.end(body);
      });
    },
    close() {
      for (const agent of [agents.http, agents.https])
        for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    },
  };
}

/** The whole body, as text. */
export function readText(answer: UpstreamAnswer): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    answer.on('data', (chunk: Buffer) => chunks.push(chunk));
    answer.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    answer.on('error', reject);
    answer.on('close', () => {
      if (!answer.complete) reject(new Error('the instance closed its answer before its end'));
    });
  });
}

/**
 * Writes the instance's events to the client as they come, unchanged, and keeps them for `collector`.
 * The instance is read no faster than the client reads. Resolves when either side is done: with why
 * the instance's stream broke, if it did; the client going away is not an error here.
 */
export function relayEvents(answer: UpstreamAnswer, raw: ServerResponse, collector: StreamCollector) {
  return new Promise<Error | undefined>((resolve) => {
    let settled = false;
    // What one read of the connection brought (the instance writes an HTTP chunk per event, a read
    // holds as many as have arrived) goes on as one write at the end of this tick: the same bytes at
    // the same moment, but one chunk for the client to take instead of dozens.
    let batch: Buffer[] = [];
    const flush = () => {
      if (batch.length === 0) return;
      const bytes = batch.length === 1 ? batch[0]! : Buffer.concat(batch);
      batch = [];
      collector.push(bytes);
      if (raw.destroyed || raw.writableEnded) return;
      if (!raw.write(bytes)) answer.pause();
    };
    const resume = () => answer.resume();
    const done = (error?: Error) => {
      if (settled) return;
      settled = true;
      flush();
      raw.off('drain', resume);
      raw.off('close', gone);
      resolve(error);
    };
    const gone = () => done();
    answer.on('data', (chunk: Buffer) => {
      if (!settled && batch.push(chunk) === 1) process.nextTick(flush);
    });
    raw.on('drain', resume);
    raw.on('close', gone);
    if (raw.destroyed) done();
    answer.on('end', () => done());
    answer.on('error', (error) => done(error));
    answer.on('close', () =>
      done(answer.complete ? undefined : new Error('the instance closed its stream before its end')),
    );
  });
}

/**
 * Server-sent events as the instance writes them, kept as bytes and read in batches (once the stream
 * ends, or after READ_EVERY_BYTES so a long answer is not held twice): content deltas of the first
 * choice, and usage.
 */
export class StreamCollector {
  private chunks: Buffer[] = [];
  private size = 0;
  private scheduled: NodeJS.Immediate | undefined;
  /** Text after the last complete event, read again with the next batch. */
  private rest = '';
  private readonly decoder = new TextDecoder();
  private text = '';
  /** Events that carried some of the answer: the tokens streamed, when the instance never reported its usage. */
  private contentEvents = 0;
  private usage: Prisma.InputJsonValue | undefined;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    // After what is being written now has gone out, never in its way.
    if (this.size >= READ_EVERY_BYTES && !this.scheduled) this.scheduled = setImmediate(() => this.read());
  }

  /** What the stream said, everything pushed read (an event cut off by the stream's end is not). */
  finish(): { text: string; usage: Prisma.InputJsonValue | undefined; contentEvents: number } {
    this.read();
    return { text: this.text, usage: this.usage, contentEvents: this.contentEvents };
  }

  private read(): void {
    clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.chunks.length === 0) return;
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    const text = this.rest + this.decoder.decode(bytes, { stream: true });
    // Line by line: an event is its lines up to a blank one (lines end in \n or \r\n).
    let data: string[] = [];
    let eventStart = 0;
    let lineStart = 0;
    for (;;) {
      const newline = text.indexOf('\n', lineStart);
      if (newline < 0) break;
      const lineEnd = newline > lineStart && text.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      if (lineEnd === lineStart) {
        if (data.length > 0) this.event(data.join('\n'));
        data = [];
        eventStart = newline + 1;
      } else if (text.startsWith('data:', lineStart)) data.push(text.slice(lineStart + 5, lineEnd).trimStart());
      lineStart = newline + 1;
    }
    this.rest = text.slice(eventStart);
  }

  private event(data: string): void {
    if (!data || data === '[DONE]') return;
    try {
      const chunk = JSON.parse(data) as {
        choices?: { index?: number; delta?: { content?: unknown } }[];
        usage?: unknown;
      };
      for (const choice of chunk.choices ?? [])
        if (typeof choice.delta?.content === 'string' && choice.delta.content !== '') {
          this.contentEvents += 1;
          if ((choice.index ?? 0) === 0) this.text += choice.delta.content;
        }
      if (chunk.usage && typeof chunk.usage === 'object') this.usage = chunk.usage as Prisma.InputJsonValue;
    } catch {
      // Not JSON: passed through as it came, not collected.
    }
  }
}

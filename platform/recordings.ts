// Recordings over plain HTTP, for files too big for a GraphQL string: upload with
// `POST /api/recordings/<repo>?reference=<tag>&title=…&filename=…` (the raw file as the body, any
// content type, up to 16 MiB) and download with `GET /api/recordings/<id>`. Downloads are always
// attachments in a sandbox: a recording is whatever someone uploaded, never a page of ours.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../db/prisma';
import type { CheckpointStore } from '../store/types';
import { attachmentDisposition } from './attachment';
import { hasValidCsrf } from './csrf';
import { toRefusal } from './errors';
import { attachRecording, findRecording, LIMITS } from './hub';

export function registerRecordings(app: FastifyInstance, db: Database, store: CheckpointStore): void {
  app.get<{ Params: { id: string } }>('/api/recordings/:id', async (request, reply) => {
    const recording = /^[0-9a-f-]{36}$/.test(request.params.id)
      ? await findRecording(db, request.params.id)
      : undefined;
    if (!recording)
      return reply.code(404).send({ error: `there is no recording ${request.params.id}`, code: 'NOT_FOUND' });
    const { stream, size } = await store.openBlob(recording.repository, recording.blobDigest);
    return reply
      .header('content-type', recording.mediaType)
      .header('content-length', size)
      .header('content-disposition', attachmentDisposition(recording.filename))
      .header('content-security-policy', "default-src 'none'; sandbox")
      .header('x-content-type-options', 'nosniff')
      .send(stream);
  });

  app.register(async (uploads) => {
    // Any file type arrives as bytes here; the body limit is the recording limit, not the API's.
    uploads.removeAllContentTypeParsers();
    uploads.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: LIMITS.recordingBytes }, (_request, body, done) =>
      done(null, body),
    );
    uploads.post<{
      Params: { '*': string };
      Querystring: { reference?: string; title?: string; filename?: string };
      Body: Buffer;
    }>('/api/recordings/*', { bodyLimit: LIMITS.recordingBytes }, async (request, reply) => {
      const account = request.caller.account;
      if (!account)
        return reply.code(401).send({
          error: 'sign in, or send an API token (Authorization: Bearer ctr_…), to attach a recording',
          code: 'UNAUTHENTICATED',
        });
      // A browser's session may upload only from our own pages (a cross-site form could post text/plain).
      if (request.viaCookie && !hasValidCsrf(request))
        return reply.code(403).send({ error: 'missing or wrong CSRF token (x-csrf-token)', code: 'FORBIDDEN' });
      const { reference, title, filename } = request.query;
      if (!reference)
        return reply
          .code(400)
          .send({ error: 'say which checkpoint it records: ?reference=<tag or digest>', code: 'BAD_USER_INPUT' });
      try {
        const recording = await attachRecording(db, store, account, {
          repository: request.params['*'],
          reference,
          title: title ?? filename ?? '',
          filename: filename ?? '',
          ...(request.headers['content-type'] ? { mediaType: request.headers['content-type'] } : {}),
          content: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
        });
        return reply.code(201).send({ recording });
      } catch (error) {
        const refusal = toRefusal(error);
        if (!refusal) throw error;
        return reply.code(refusal.status).send({ error: refusal.message, code: refusal.reason ?? refusal.code });
      }
    });
  });
}

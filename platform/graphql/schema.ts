// The whole schema: each domain module adds its types and fields to the one builder when imported.
import { builder } from './builder';
import './accounts';
import './autonomy';
import './budget';
import './checkpoints';
import './children';
import './credit';
import './feedback';
import './germline';
import './hub';
import './instances';
import './marketplace';
import './training';
import './sponsors';
import './usage';
import './probes';

/** A fresh GraphQLSchema (lexicographically sorted); every dependency comes from the context. */
export function buildSchema() {
  return builder.toSchema();
}

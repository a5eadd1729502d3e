// The cost bounds of /api/graphql: query depth, aliases and fields per operation, each refused with
// a message and a code (QUERY_TOO_COMPLEX) so a client can tell "ask for less" from any other error.
import {
  type ASTNode,
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  type SelectionSetNode,
  type ValidationRule,
} from 'graphql';

export const LIMITS = { depth: 8, aliases: 15, fields: 200 };

/** One kind of refusal for every limit, so a client can tell "ask for less" from any other error. */
function tooComplex(problem: string, node: ASTNode): GraphQLError {
  return new GraphQLError(`${problem}; ask for less, or split it into several operations`, {
    nodes: [node],
    extensions: { code: 'QUERY_TOO_COMPLEX' },
  });
}

/** Refuses operations nesting fields deeper than the limit (each level can multiply a query's cost). */
export const depthLimit: ValidationRule = (context) => {
  // Each fragment's depth once: a fragment spread many times must not be walked many times.
  const fragmentDepths = new Map<string, number>();
  const fragmentDepth = (fragment: FragmentDefinitionNode): number => {
    const name = fragment.name.value;
    if (!fragmentDepths.has(name)) {
      fragmentDepths.set(name, 0); // a cycle counts nothing here; NoFragmentCyclesRule refuses it
      fragmentDepths.set(name, depthOf(fragment.selectionSet));
    }
    return fragmentDepths.get(name)!;
  };
  /** Levels of fields below `set` (fragments add none of their own), cut off just above the limit. */
  const depthOf = (set: SelectionSetNode | undefined, level = 0): number => {
    if (!set || level > LIMITS.depth) return 0;
    let deepest = 0;
    for (const selection of set.selections) {
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? context.getFragment(selection.name.value) : undefined;
      const depth =
        selection.kind === Kind.FIELD
          ? 1 + depthOf(selection.selectionSet, level + 1)
          : selection.kind === Kind.INLINE_FRAGMENT
            ? depthOf(selection.selectionSet, level)
            : fragment
              ? fragmentDepth(fragment)
              : 0;
      deepest = Math.max(deepest, depth);
    }
    return deepest;
  };
  return {
    OperationDefinition(operation) {
      const depth = depthOf(operation.selectionSet);
      if (depth > LIMITS.depth)
        context.reportError(tooComplex(`too deep: at most ${LIMITS.depth} levels of fields per operation`, operation));
    },
  };
};

/** Refuses operations with more aliases than the limit (alias batching multiplies a query's cost). */
export const aliasLimit: ValidationRule = (context) => {
  let aliases = 0;
  return {
    Field(node) {
      if (node.alias && ++aliases === LIMITS.aliases + 1)
        context.reportError(tooComplex(`too many aliases: at most ${LIMITS.aliases} per operation`, node));
    },
  };
};

/** Refuses operations selecting more fields than the limit: the cost bound of this API. */
export const fieldLimit: ValidationRule = (context) => {
  let fields = 0;
  return {
    Field(node) {
      if (node.kind === Kind.FIELD && ++fields === LIMITS.fields + 1)
        context.reportError(tooComplex(`too many fields: at most ${LIMITS.fields} per operation`, node));
    },
  };
};

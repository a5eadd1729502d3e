// The cost bounds of /api/graphql: query depth, aliases, fields and objects fetched per operation,
// each refused with a message and a code (QUERY_TOO_COMPLEX) so a client can tell "ask for less" from
// any other error.
import {
  type ASTNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  getNamedType,
  getNullableType,
  type GraphQLField,
  GraphQLError,
  GraphQLList,
  type GraphQLNamedType,
  type GraphQLSchema,
  isObjectType,
  isInterfaceType,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationRule,
} from 'graphql';

export const LIMITS = { depth: 8, aliases: 15, fields: 200, cost: 150_000 };

/** How many items a list field without a `limit`/`first` and without a declared `listSize` is counted as. */
export const DEFAULT_LIST_SIZE = 20;

/**
 * Declared on a list field (Pothos `extensions`): the most items it answers (its page size), or for
 * a list without one, the size it is counted as. A `limit`/`first` given as a number counts instead.
 */
export const listSize = (items: number) => ({ extensions: { listSize: items } });

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

/**
 * Refuses operations that may fetch more objects than the limit. Each field that answers an object
 * counts 1 per item; a list multiplies what is below it by its size: its `limit` or `first` argument
 * (given as a number, else its default; given as a variable, the declared `listSize`), or else its
 * declared `listSize` (its page size), or else DEFAULT_LIST_SIZE. Scalars are read from their object and count nothing; introspection is
 * bounded by the schema and counts nothing. So aliases and nesting multiply, as they do in the database.
 */
export const costLimit: ValidationRule = (context) => {
  const costOf = costCounter(context.getSchema(), (name) => context.getFragment(name));
  return {
    OperationDefinition(operation) {
      if (costOf(operation) > LIMITS.cost)
        context.reportError(
          tooComplex(
            `too costly: it may fetch more than ${LIMITS.cost} objects, as each list multiplies what is below it by its limit or page size`,
            operation,
          ),
        );
    },
  };
};

/** The cost of each operation of `document` as costLimit counts it (exact up to just above the limit). */
export function operationCosts(schema: GraphQLSchema, document: DocumentNode): number[] {
  const fragments = new Map(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  const costOf = costCounter(schema, (name) => fragments.get(name));
  return document.definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((operation) => costOf(operation));
}

function costCounter(
  schema: GraphQLSchema,
  fragmentNamed: (name: string) => FragmentDefinitionNode | null | undefined,
): (operation: OperationDefinitionNode) => number {
  const fragmentCosts = new Map<string, number>();

  const sizeOf = (field: GraphQLField<unknown, unknown>, node: FieldNode): number => {
    const declared = (field.extensions as { listSize?: number } | undefined)?.listSize;
    const parameter = field.args.find((a) => a.name === 'limit' || a.name === 'first');
    const argument = parameter && node.arguments?.find((a) => a.name.value === parameter.name);
    if (argument?.value.kind === Kind.INT) return Math.max(0, Number(argument.value.value));
    // A variable's value is not known while validating: the page size, the most it can be.
    if (argument) return declared ?? DEFAULT_LIST_SIZE;
    if (typeof parameter?.defaultValue === 'number') return parameter.defaultValue;
    return declared ?? DEFAULT_LIST_SIZE;
  };

  const fieldCost = (parent: GraphQLNamedType, node: FieldNode): number => {
    if (node.name.value.startsWith('__') || !node.selectionSet) return 0;
    const field = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[node.name.value] : undefined;
    if (!field) return 0; // unknown fields are FieldsOnCorrectTypeRule's to refuse
    const below = 1 + costOf(getNamedType(field.type), node.selectionSet);
    return getNullableType(field.type) instanceof GraphQLList ? sizeOf(field, node) * below : below;
  };

  const costOf = (parent: GraphQLNamedType, set: SelectionSetNode): number => {
    let cost = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) cost += fieldCost(parent, selection);
      else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        cost += type ? costOf(type, selection.selectionSet) : 0;
      } else {
        const fragment = fragmentNamed(selection.name.value);
        if (fragment) cost += fragmentCost(fragment);
      }
      if (cost > LIMITS.cost) return cost; // enough to refuse; stop multiplying
    }
    return cost;
  };

  const fragmentCost = (fragment: FragmentDefinitionNode): number => {
    const name = fragment.name.value;
    if (!fragmentCosts.has(name)) {
      fragmentCosts.set(name, 0); // a cycle counts nothing here; NoFragmentCyclesRule refuses it
      const type = schema.getType(fragment.typeCondition.name.value);
      fragmentCosts.set(name, type ? costOf(type, fragment.selectionSet) : 0);
    }
    return fragmentCosts.get(name)!;
  };

  return (operation) => {
    const root = schema.getRootType(operation.operation);
    return root ? costOf(root, operation.selectionSet) : 0;
  };
}

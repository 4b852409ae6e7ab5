// Narrowing of parsed JSON, shared by every parser of outside input (CNI config, Docker
// requests, etcd records, overlay definitions).

/** A plain JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

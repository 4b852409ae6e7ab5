// What the local endpoint source (./local.ts) asks of the world besides the IPAM store: the
// runtimes' own knowledge of a container (./runtime-metadata.ts) and the labels an operator
// set on an endpoint name (./operator-labels.ts). Interfaces only, so ./local.ts is tested
// with stand-ins and the implementations without it.
import type { EndpointHealth, EndpointPort } from './endpoint';

export interface RuntimeFacts {
  readonly name?: string;
  readonly labels?: Readonly<Record<string,string>>;
  readonly exposedPorts?: readonly EndpointPort[];
  /** The runtime's own id of the container (Docker's, when the store holds an endpoint id). */
  readonly containerId?: string;
  /** The health check's state (inspect's State.Health.Status); none without a health check. */
  readonly health?: EndpointHealth;
}
/** The runtimes' own knowledge of a container; undefined when the runtime does not know it. */
export interface MetadataSource { lookup(runtime: string, containerId: string): Promise<RuntimeFacts | undefined> }
/** Operator labels by endpoint name. */
export interface OperatorLabelSource { labelsFor(name: string): Readonly<Record<string,string>> | undefined }

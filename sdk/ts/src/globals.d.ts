// The Web APIs StarlingMonkey (componentize-js's engine) gives a component
// and the SDK uses; declared here because the component is no DOM or Node.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string);
  decode(input?: Uint8Array): string;
}
declare const performance: { now(): number };

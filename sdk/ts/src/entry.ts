// What a component's entry module re-exports: the WIT export `collector`
// (and, for the build's identity run in Node, the app).
export { collector } from './edge.js';
export { currentApp } from './server.js';

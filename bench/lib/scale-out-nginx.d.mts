/** Types of scale-out-nginx.mjs for the TypeScript tests that import it (test/scale-out.e2e.test.ts). */

import type { ChildProcess } from 'node:child_process';

export declare const STREAM_PROXY_TIMEOUT_SECONDS: number;

export interface ScaleOutNginxOptions {
  listen: string;
  agents: string[];
  tls?: { certPath: string; keyPath: string } | null;
  accessLog?: string | null;
  local?: { prefix: string } | null;
  workerProcesses?: number | 'auto';
  hashKey?: string;
}

export declare function scaleOutNginxConfig(options: ScaleOutNginxOptions): string;

export interface ScaleOutNginx {
  child: ChildProcess;
  pid: number | undefined;
  port: number;
  config: string;
  output(): string;
  stop(): Promise<void>;
}

export declare function startScaleOutNginx(options: {
  command: string;
  dir: string;
  port: number;
  agents: string[];
  accessLog?: string | null;
  workerProcesses?: number | 'auto';
  hashKey?: string;
  spawnServer?: (command: string, args: string[]) => { child: ChildProcess; pid: number | undefined; output(): string };
}): Promise<ScaleOutNginx>;

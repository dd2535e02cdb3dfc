/**
 * A Node HTTP server that offers each request to a lane before its "request" listeners (the
 * HTTP API's handler, attached by @effect/platform-node): a request the lane takes is the
 * lane's alone; one it declines goes on untouched. Node calls listeners in turn and has no
 * way for one to stop the others, so the choice is made where the event is emitted.
 */
import { type IncomingMessage, Server, type ServerResponse } from "node:http"

export class LaneHttpServer extends Server {
  constructor(private readonly lane: (request: IncomingMessage, response: ServerResponse) => boolean) {
    super()
  }

  override emit(event: string | symbol, ...args: Array<any>): boolean {
    if (event === "request" && this.lane(args[0], args[1])) return true
    return super.emit(event as string, ...args)
  }
}

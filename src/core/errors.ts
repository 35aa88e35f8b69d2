/** The one error type of the API: a status and a message that tells the caller what to fix. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    /** Response headers that go with it (e.g. the rate-limit headers of a 429). */
    public headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Shorthand for a 400 with a message. */
export function badRequest(message: string): ApiError {
  return new ApiError(400, message);
}

export function notFound(message: string): ApiError {
  return new ApiError(404, message);
}

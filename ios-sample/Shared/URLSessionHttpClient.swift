// HttpClient on URLSession: the app's own network stack (ATS, proxies, pinning)
// carries the core's requests. No redirects; TLS checked by the system.
import Countersign
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Refuses redirects (the core's requests are signed for one URL).
final class NoRedirects: NSObject, URLSessionTaskDelegate {
    func urlSession(
        _ session: URLSession, task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
        completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

/// `HttpClient` on URLSession.
public final class URLSessionHttpClient: HttpClient, Sendable {
    private let session: URLSession

    /// An ephemeral session (no cookies, no cache).
    public init() {
        session = URLSession(
            configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
    }

    /// Sends one request; transport failures become `HttpError`.
    public func send(request: HttpRequest) async throws -> HttpResponse {
        guard let url = URL(string: request.url) else {
            throw HttpError.Other(detail: "bad URL")
        }
        var r = URLRequest(url: url)
        let (seconds, attoseconds) = request.timeout.components
        r.timeoutInterval = TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
        switch request.method {
        case .get: r.httpMethod = "GET"
        case .post: r.httpMethod = "POST"
        case .put: r.httpMethod = "PUT"
        case .delete: r.httpMethod = "DELETE"
        }
        for h in request.headers { r.setValue(h.value, forHTTPHeaderField: h.name) }
        if !request.body.isEmpty { r.httpBody = request.body }
        let session = self.session
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { c in
            session.dataTask(with: r) { data, response, error in
                if let error = error as? URLError {
                    c.resume(throwing: error.code == .timedOut
                        ? HttpError.Timeout : HttpError.Connect(detail: "\(error.code.rawValue)"))
                } else if let error {
                    c.resume(throwing: HttpError.Other(detail: "\(type(of: error))"))
                } else if let response {
                    c.resume(returning: (data ?? Data(), response))
                } else {
                    c.resume(throwing: HttpError.Other(detail: "no response"))
                }
            }.resume()
        }
        guard let http = response as? HTTPURLResponse else {
            throw HttpError.Other(detail: "not HTTP")
        }
        let headers = http.allHeaderFields.compactMap { k, v -> HttpHeader? in
            guard let k = k as? String, let v = v as? String else { return nil }
            return HttpHeader(name: k.lowercased(), value: v)
        }
        return HttpResponse(status: UInt16(clamping: http.statusCode), headers: headers, body: data)
    }
}

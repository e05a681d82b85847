// The library's default HttpClient on Android: HttpURLConnection (Android and the JVM
// both have it), so the app's network stack (proxy settings, network security
// config, certificate pinning) carries the core's requests and TLS is checked by the
// platform. Chosen over the core's reqwest client, whose certificate check through
// rustls-platform-verifier needs a JNI initialisation on Android, and which adds
// about 2.5 MB per ABI. No redirects.
package org.countersign

import java.io.IOException
import java.net.HttpURLConnection
import java.net.SocketTimeoutException
import java.net.URL
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/** [HttpClient] on [HttpURLConnection], off the caller's thread (Dispatchers.IO). */
class UrlConnectionHttpClient : HttpClient {
    override suspend fun send(request: HttpRequest): HttpResponse = withContext(Dispatchers.IO) {
        val connection = try {
            URL(request.url).openConnection() as HttpURLConnection
        } catch (e: IOException) {
            throw HttpException.Connect(e.javaClass.simpleName)
        }
        try {
            val timeout = request.timeout.inWholeMilliseconds.coerceIn(1, Int.MAX_VALUE.toLong()).toInt()
            connection.connectTimeout = timeout
            connection.readTimeout = timeout
            connection.instanceFollowRedirects = false
            connection.useCaches = false
            connection.requestMethod = when (request.method) {
                HttpMethod.GET -> "GET"
                HttpMethod.POST -> "POST"
                HttpMethod.PUT -> "PUT"
                HttpMethod.DELETE -> "DELETE"
            }
            for (h in request.headers) connection.setRequestProperty(h.name, h.value)
            if (request.body.isNotEmpty()) {
                connection.doOutput = true
                connection.setFixedLengthStreamingMode(request.body.size)
                connection.outputStream.use { it.write(request.body) }
            }
            val status = connection.responseCode
            val stream = if (status >= 400) connection.errorStream else connection.inputStream
            val body = stream?.use { it.readBytes() } ?: ByteArray(0)
            val headers = connection.headerFields.flatMap { (name, values) ->
                if (name == null) emptyList() else values.map { HttpHeader(name.lowercase(), it) }
            }
            HttpResponse(status.toUShort(), headers, body)
        } catch (e: SocketTimeoutException) {
            throw HttpException.Timeout()
        } catch (e: IOException) {
            throw HttpException.Connect(e.javaClass.simpleName)
        } finally {
            connection.disconnect()
        }
    }
}

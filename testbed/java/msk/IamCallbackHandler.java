// Emulated Amazon MSK IAM (test only): the broker's server callback handler for both forms of
// MSK IAM authentication, holding the emulated account's credentials and the cluster's region
// (JAAS options mskCredentials="AKID:secret,..." and mskRegion="us-east-1"):
//  - OAUTHBEARER: the token AWS's signer libraries make is the base64url (no padding) of a
//    presigned URL "https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect&...";
//    the host must name this cluster's region, and the signature must verify (the libraries
//    append User-Agent after signing, so it is not part of the signed request);
//  - AWS_MSK_IAM: IamSaslServer passes the signed parameters and the host the client signed for
//    (the name it dialled), which is part of the signature but checked against nothing else.
// Refusals are logged with their reason (logger msk.IamCallbackHandler); the principal is the
// access key id.
package msk;

import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Instant;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public final class IamCallbackHandler implements AuthenticateCallbackHandler {
    private static final Logger LOG = LoggerFactory.getLogger(IamCallbackHandler.class);
    private static final int MAX_TOKEN = 8192;

    private final Clock clock = Clock.systemUTC();
    private String region;
    private Map<String, String> secrets = Map.of();

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> jaas) {
        Map<String, ?> options = jaas.get(0).getOptions();
        region = (String) options.get("mskRegion");
        String credentials = (String) options.get("mskCredentials");
        if (region == null || credentials == null) {
            throw new IllegalArgumentException("JAAS options mskRegion and mskCredentials are required");
        }
        Map<String, String> parsed = new HashMap<>();
        for (String pair : credentials.split(",")) {
            String[] parts = pair.split(":", 2);
            if (parts.length != 2) {
                throw new IllegalArgumentException("mskCredentials: expected AKID:secret,...");
            }
            parsed.put(parts[0].trim(), parts[1].trim());
        }
        secrets = Map.copyOf(parsed);
    }

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        for (Callback callback : callbacks) {
            if (callback instanceof OAuthBearerValidatorCallback v) {
                validateToken(v);
            } else if (callback instanceof IamSaslServer.VerifyCallback v) {
                try {
                    v.accessKeyId = SigV4Check.verify(v.query, v.host, region, secrets, clock.instant())
                            .accessKeyId();
                    LOG.info("AWS_MSK_IAM: authenticated {} (signed for host {})", v.accessKeyId, v.host);
                } catch (SigV4Check.Refused e) {
                    v.refused = e.getMessage();
                    LOG.info("AWS_MSK_IAM: refused (signed for host {}): {}", v.host, e.getMessage());
                }
            } else {
                throw new UnsupportedCallbackException(callback);
            }
        }
    }

    private void validateToken(OAuthBearerValidatorCallback callback) {
        String token = callback.tokenValue();
        try {
            callback.token(verifyToken(token));
            LOG.info("OAUTHBEARER (MSK IAM): authenticated {}", callback.token().principalName());
        } catch (SigV4Check.Refused e) {
            LOG.info("OAUTHBEARER (MSK IAM): refused: {}", e.getMessage());
            callback.error("invalid_token", null, null);
        }
    }

    private OAuthBearerToken verifyToken(String token) throws SigV4Check.Refused {
        if (token == null || token.length() > MAX_TOKEN) {
            throw new SigV4Check.Refused("no token, or a token too long");
        }
        URI url;
        try {
            url = new URI(new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8));
        } catch (IllegalArgumentException | URISyntaxException e) {
            throw new SigV4Check.Refused("the token is not a base64url-encoded URL");
        }
        String expectedHost = "kafka." + region + ".amazonaws.com";
        if (!"https".equals(url.getScheme()) || !expectedHost.equals(url.getHost())
                || url.getPort() != -1) {
            throw new SigV4Check.Refused("the token is for " + url.getScheme() + "://" + url.getHost()
                    + ", not " + expectedHost);
        }
        if (!(url.getRawPath() == null || url.getRawPath().isEmpty() || "/".equals(url.getRawPath()))) {
            throw new SigV4Check.Refused("the token's URL has a path");
        }
        Map<String, String> query = parseQuery(url.getRawQuery());
        query.remove("User-Agent");  // appended after signing by every signer library
        Instant now = clock.instant();
        SigV4Check.Verified verified = SigV4Check.verify(query, expectedHost, region, secrets, now);
        return new Token(token, verified.accessKeyId(), now.toEpochMilli(), verified.expires().toEpochMilli());
    }

    private static Map<String, String> parseQuery(String raw) throws SigV4Check.Refused {
        Map<String, String> query = new LinkedHashMap<>();
        if (raw == null) {
            throw new SigV4Check.Refused("the token's URL has no query");
        }
        for (String pair : raw.split("&")) {
            String[] kv = pair.split("=", 2);
            String key = URLDecoder.decode(kv[0], StandardCharsets.UTF_8);
            String value = kv.length == 2 ? URLDecoder.decode(kv[1], StandardCharsets.UTF_8) : "";
            if (query.put(key, value) != null) {
                throw new SigV4Check.Refused("query parameter " + key + " given twice");
            }
        }
        return query;
    }

    @Override
    public void close() {
    }

    /** A verified IAM token: the principal is the access key id; valid until the signature expires. */
    private record Token(String value, String principalName, Long startTimeMs, long lifetimeMs)
            implements OAuthBearerToken {
        @Override
        public Set<String> scope() {
            return Set.of();
        }
    }
}

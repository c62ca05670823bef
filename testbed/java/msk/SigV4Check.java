// Emulated Amazon MSK IAM (test only): verifies an AWS Signature Version 4 signature over the
// request MSK's IAM clients sign: "GET https://<host>/?Action=kafka-cluster:Connect&..." with
// the authentication in query parameters (a presigned request), the host header signed and an
// empty payload. Written from the SigV4 specification (AWS IAM User Guide, "Create a signed
// AWS API request"): canonical request, string to sign, derived signing key, HMAC-SHA256.
package msk;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public final class SigV4Check {
    public static final String SERVICE = "kafka-cluster";
    public static final String ACTION = "kafka-cluster:Connect";
    private static final String ALGORITHM = "AWS4-HMAC-SHA256";
    private static final DateTimeFormatter AMZ_DATE = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'");
    private static final Duration CLOCK_SKEW = Duration.ofMinutes(5);
    private static final long MAX_EXPIRES = 7 * 24 * 3600;  // SigV4's limit for presigned requests

    /** Why a request was refused; the message is what the client is told. */
    public static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;

        public Refused(String message) {
            super(message);
        }
    }

    /** A verified request: who signed it, and until when the signature is valid. */
    public record Verified(String accessKeyId, Instant expires) {}

    private SigV4Check() {}

    /**
     * Checks the signed query parameters (canonical names such as "X-Amz-Date", values decoded,
     * X-Amz-Signature among them) of a request for {@code host}, against {@code secrets}
     * (access key id -> secret access key) and the cluster's {@code region}.
     */
    public static Verified verify(Map<String, String> query, String host, String region,
                                  Map<String, String> secrets, Instant now) throws Refused {
        String algorithm = need(query, "X-Amz-Algorithm");
        if (!ALGORITHM.equals(algorithm)) {
            throw new Refused("unsupported signing algorithm " + algorithm);
        }
        if (!ACTION.equals(need(query, "Action"))) {
            throw new Refused("the signed action is not " + ACTION);
        }
        if (!"host".equals(need(query, "X-Amz-SignedHeaders"))) {
            throw new Refused("expected exactly the host header to be signed");
        }
        String[] scope = need(query, "X-Amz-Credential").split("/", -1);
        if (scope.length != 5 || !SERVICE.equals(scope[3]) || !"aws4_request".equals(scope[4])) {
            throw new Refused("malformed credential scope");
        }
        String accessKeyId = scope[0];
        String amzDate = need(query, "X-Amz-Date");
        Instant signedAt = parseDate(amzDate);
        if (!amzDate.startsWith(scope[1]) || scope[1].length() != 8) {
            throw new Refused("the credential scope's date is not the signing date");
        }
        if (!region.equals(scope[2])) {
            throw new Refused("signed for region " + scope[2] + ", but this cluster is in " + region);
        }
        long expiresIn = parseExpires(need(query, "X-Amz-Expires"));
        Instant expires = signedAt.plusSeconds(expiresIn);
        if (now.isAfter(expires)) {
            throw new Refused("the signature expired at " + expires);
        }
        if (signedAt.isAfter(now.plus(CLOCK_SKEW))) {
            throw new Refused("the signing date " + amzDate + " is in the future");
        }
        String secret = secrets.get(accessKeyId);
        if (secret == null) {
            throw new Refused("unknown access key id");
        }
        String expected = signature(query, host, secret, amzDate, scope);
        byte[] given = need(query, "X-Amz-Signature").getBytes(StandardCharsets.US_ASCII);
        if (!MessageDigest.isEqual(expected.getBytes(StandardCharsets.US_ASCII), given)) {
            throw new Refused("the signature does not match (wrong secret access key?)");
        }
        return new Verified(accessKeyId, expires);
    }

    private static String signature(Map<String, String> query, String host, String secret,
                                     String amzDate, String[] scope) throws Refused {
        // Canonical query: every parameter but the signature, names and values URI-encoded,
        // sorted by encoded name.
        TreeMap<String, String> sorted = new TreeMap<>();
        for (Map.Entry<String, String> e : query.entrySet()) {
            if (!e.getKey().equals("X-Amz-Signature")) {
                sorted.put(uriEncode(e.getKey()), uriEncode(e.getValue()));
            }
        }
        StringBuilder canonicalQuery = new StringBuilder();
        for (Map.Entry<String, String> e : sorted.entrySet()) {
            if (canonicalQuery.length() > 0) {
                canonicalQuery.append('&');
            }
            canonicalQuery.append(e.getKey()).append('=').append(e.getValue());
        }
        String canonicalRequest = "GET\n/\n" + canonicalQuery + "\nhost:" + host.trim().toLowerCase()
                + "\n\nhost\n" + hex(sha256(new byte[0]));
        String credentialScope = scope[1] + "/" + scope[2] + "/" + scope[3] + "/" + scope[4];
        String stringToSign = ALGORITHM + "\n" + amzDate + "\n" + credentialScope + "\n"
                + hex(sha256(canonicalRequest.getBytes(StandardCharsets.UTF_8)));
        byte[] key = ("AWS4" + secret).getBytes(StandardCharsets.UTF_8);
        for (int i = 1; i <= 4; i++) {
            key = hmac(key, scope[i]);
        }
        return hex(hmac(key, stringToSign));
    }

    /** URI-encodes every byte but A-Z a-z 0-9 - . _ ~, as %XY with upper-case hex digits. */
    static String uriEncode(String text) {
        StringBuilder out = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~') {
                out.append((char) c);
            } else {
                out.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return out.toString();
    }

    private static String need(Map<String, String> query, String name) throws Refused {
        String value = query.get(name);
        if (value == null || value.isEmpty()) {
            throw new Refused("missing " + name);
        }
        return value;
    }

    private static Instant parseDate(String amzDate) throws Refused {
        try {
            return LocalDateTime.parse(amzDate, AMZ_DATE).toInstant(ZoneOffset.UTC);
        } catch (DateTimeParseException e) {
            throw new Refused("malformed X-Amz-Date");
        }
    }

    private static long parseExpires(String text) throws Refused {
        try {
            long seconds = Long.parseLong(text);
            if (seconds >= 1 && seconds <= MAX_EXPIRES) {
                return seconds;
            }
        } catch (NumberFormatException e) {
            // refused below
        }
        throw new Refused("malformed X-Amz-Expires");
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] hmac(byte[] key, String data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String hex(byte[] data) {
        return HexFormat.of().formatHex(data);
    }
}

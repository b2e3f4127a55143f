import RelayJSON
import Testing

@testable import LambdaExtension
@testable import RelayCore

/// The Extensions and Telemetry API bodies as Lambda sends them, read without Foundation.
@Suite struct LambdaBodyDecodingTests {
    @Test func registerAnswer() throws {
        let answer = #"{"functionName":"my-function","functionVersion":"$LATEST","handler":"lambda_function.lambda_handler","accountId":"123456789012"}"#
        #expect(
            try Registration.decode(Array(answer.utf8))
                == Registration(functionName: "my-function", functionVersion: "$LATEST", handler: "lambda_function.lambda_handler", accountId: "123456789012"))
        // Without the accountId feature, and with a null handler (container images).
        #expect(
            try Registration.decode(Array(#"{"functionName":"f","functionVersion":"7","handler":null}"#.utf8))
                == Registration(functionName: "f", functionVersion: "7", handler: nil, accountId: nil))
        #expect(throws: JSONError(.missingKey, "no value for the key 'functionVersion'")) { try Registration.decode(Array(#"{"functionName":"f"}"#.utf8)) }
        #expect(throws: JSONError(.typeMismatch, "the value of 'accountId' is a number, not of the type expected")) {
            try Registration.decode(Array(#"{"functionName":"f","functionVersion":"1","accountId":123456789012}"#.utf8))
        }
        // A refusal, as the client reads its errorType.
        let refusal = try JSONValue.parse(#"{"errorMessage":"Invalid event type","errorType":"Extension.InvalidEventType"}"#)
        #expect(refusal["errorType"]?.string == ExtensionError.Code.invalidEventType.functionErrorType)
    }

    @Test func invokeEventWithEveryDocumentedField() throws {
        let body = """
            {
              "eventType": "INVOKE",
              "deadlineMs": 1733512345678,
              "requestId": "3da1f2dc-3222-475e-9205-e2e6c6318895",
              "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest",
              "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Parent=2be948a625588e32;Sampled=1"}
            }
            """
        let event = try ExtensionEvent.decode(Array(body.utf8))
        #expect(
            event
                == .invoke(
                    InvokeEvent(
                        requestId: "3da1f2dc-3222-475e-9205-e2e6c6318895", deadlineMs: 1_733_512_345_678,
                        invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest")))
    }

    @Test func shutdownEventAndItsErrors() throws {
        let body = #"{"eventType":"SHUTDOWN","shutdownReason":"TIMEOUT","deadlineMs":1733512347000}"#
        #expect(try ExtensionEvent.decode(Array(body.utf8)) == .shutdown(ShutdownEvent(shutdownReason: "TIMEOUT", deadlineMs: 1_733_512_347_000)))
        #expect(throws: ExtensionError(.unexpectedEvent, "shutdown event missing fields: invalid JSON: no value for the key 'shutdownReason'")) {
            try ExtensionEvent.decode(Array(#"{"eventType":"shutdown","deadlineMs":1}"#.utf8))
        }
        let wrongType = "INVOKE event missing fields: invalid JSON: the value of 'deadlineMs' is a string, not of the type expected"
        #expect(throws: ExtensionError(.unexpectedEvent, wrongType)) {
            try ExtensionEvent.decode(Array(#"{"eventType":"INVOKE","requestId":"r","deadlineMs":"soon"}"#.utf8))
        }
        #expect(throws: ExtensionError(.unexpectedEvent, #"event without an eventType: {"eventType":1}"#)) {
            try ExtensionEvent.decode(Array(#"{"eventType":1}"#.utf8))
        }
    }

    @Test func telemetryBatch() {
        let batch = """
            [
              {"time":"2026-11-24T00:00:00.000Z","type":"platform.initStart","record":{"initializationType":"snap-start","phase":"init"}},
              {"time":"2026-11-24T00:00:00.100Z","type":"platform.restoreStart","record":{"runtimeVersion":"python:3.12.v1"}},
              {"time":"2026-11-24T00:00:00.200Z","type":"platform.initRuntimeDone","record":{"initializationType":"snap-start","status":"success"}},
              {"time":"2026-11-24T00:00:01.000Z","type":"platform.runtimeDone","record":{"requestId":"r1","status":"success",
                "metrics":{"durationMs":12.5,"producedBytes":42},"spans":[{"name":"responseLatency","start":"2026-11-24T00:00:00.990Z","durationMs":1.2}]}},
              {"time":"2026-11-24T00:00:02.000Z","type":"platform.runtimeDone","record":{"requestId":"r2","status":"timeout"}}
            ]
            """
        let events = TelemetryListener.platformEvents(in: Array(batch.utf8))
        #expect(events.runtimeDone == ["r1", "r2"] && events.functionInitDone)
        #expect(events.restoreStart == PlatformMilestones.unixMilliseconds(rfc3339: "2026-11-24T00:00:00.100Z"))
        #expect(events.restoreStart != nil)
    }

    /// A batch is read whole or not at all, as with `JSONDecoder` before.
    @Test(arguments: [
        #"[{"type":"platform.runtimeDone","record":{"requestId":"a"}},{"record":{}}]"#,
        #"[{"type":"platform.runtimeDone","record":{"requestId":"a"}},{"type":"x","time":5}]"#,
        #"[{"type":"platform.runtimeDone","record":{"requestId":7}}]"#, #"{"type":"platform.runtimeDone","record":{"requestId":"a"}}"#,
        #"[{"type":"platform.runtimeDone","record":{"requestId":"a"}},]"#,
        // A record that is not an object (a `function` log line) drops the batch too.
        #"[{"type":"platform.runtimeDone","record":{"requestId":"a"}},{"type":"function","record":"a log line"}]"#,
    ])
    func aBatchOfAnotherShapeYieldsNothing(batch: String) {
        #expect(TelemetryListener.platformEvents(in: Array(batch.utf8)) == TelemetryListener.PlatformEvents())
    }

    @Test func extraHeadersSetting() throws {
        #expect(try EnvironmentReader.stringObject(#" {"X-A":"1","X-\u0042":"\u00e9","X-A":"dup"} "#) == ["X-A": "1", "X-B": "é"])
        #expect(throws: JSONError(.typeMismatch, "expected an object, found an array")) { try EnvironmentReader.stringObject(#"["X-A"]"#) }
        #expect(throws: JSONError(.missingKey, "no value for the key 'X-A'")) { try EnvironmentReader.stringObject(#"{"X-A":null}"#) }
        let settings = ExtensionSettings(environment: ["PYROSCOPE_HTTP_HEADERS": #"{"X-A":1}"#])
        #expect(settings.errors.map(\.description).first?.hasSuffix("the value of 'X-A' is a number, not of the type expected)") == true)
    }
}

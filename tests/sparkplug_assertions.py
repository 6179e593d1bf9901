"""The Sparkplug 3.0 edge-node assertions we check, by their ids in the specification.

Every normative ``[tck-testable tck-id-...]`` statement of /work/spec (the 3.0 chapters)
that binds an edge node, with the Eclipse TCK's edge-node tests (SessionEstablishmentTest,
SendDataTest, SendComplexDataTest, ReceiveCommandTest, SessionTerminationTest,
PrimaryHostTest, MultipleBrokerTest) as the reference list. Left out, and why, in
docs/SPARKPLUG.md ("Conformance"): rules for host applications, for MQTT servers, for
what a deployment must keep unique, and the SHOULDs of report by exception.

``statement`` is the rule shortened; ``scenarios`` the parts of the story
(tests/sparkplug_story.py) whose traffic shows it; ``check`` the function that looks.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests import sparkplug_checks as c
from tests import sparkplug_flow_checks as f
from tests import sparkplug_metric_checks as m
from tests.sparkplug_checks import Check

ALL = ("waiting", "start", "rebirth", "device", "broker", "kill", "stale", "host", "end")
BIRTH_SCENES = ("start", "rebirth", "device", "broker", "kill", "host")


@dataclass(frozen=True)
class Assertion:
    id: str
    statement: str
    check: Check
    scenarios: tuple[str, ...] = ALL
    #: "" = a MUST or SHOULD the node exercises; otherwise why it holds only vacuously.
    vacuous: str = ""


NO_NDATA = "the node sends no NDATA (no node metric changes in this issue): checked if any"
NO_COMPLEX = "the node publishes no DataSet or Template: checked that none appears"
MQTT5 = "the node speaks MQTT 3.1.1: checked that every CONNECT is protocol level 4"

A = Assertion
ASSERTIONS: tuple[Assertion, ...] = (
    # ------------------------------------------------------------ identifiers and topics
    A("tck-id-intro-group-id-string", "group_id is UTF-8, used in the topics", c.group_id),
    A("tck-id-intro-group-id-chars", "group_id has only MQTT topic characters", c.group_id),
    A("tck-id-intro-edge-node-id-string", "edge_node_id is UTF-8, used in topics", c.edge_node_id),
    A("tck-id-intro-edge-node-id-chars", "edge_node_id: only topic characters", c.edge_node_id),
    A("tck-id-intro-device-id-string", "device_id is UTF-8, used in the topics", c.device_id),
    A("tck-id-intro-device-id-chars", "device_id has only MQTT topic characters", c.device_id),
    A(
        "tck-id-topic-structure",
        "namespace/group_id/message_type/edge_node_id/[device_id]",
        c.topic_structure,
    ),
    A("tck-id-topic-structure-namespace-a", "namespace is spBv1.0", c.namespace),
    A(
        "tck-id-topic-structure-namespace-valid-group-id",
        "group_id: UTF-8 without + / #",
        c.group_id,
    ),
    A(
        "tck-id-topic-structure-namespace-valid-edge-node-id",
        "edge_node_id: UTF-8 without + / #",
        c.edge_node_id,
    ),
    A(
        "tck-id-topic-structure-namespace-valid-device-id",
        "device_id: UTF-8 without + / #",
        c.device_id,
    ),
    A(
        "tck-id-topic-structure-namespace-unique-device-id",
        "device_id unique within the edge node",
        c.unique_device_ids,
    ),
    A(
        "tck-id-topic-structure-namespace-device-id-associated-message-types",
        "DBIRTH, DDEATH, DDATA, DCMD topics carry device_id",
        c.device_id_levels,
    ),
    A(
        "tck-id-topic-structure-namespace-device-id-non-associated-message-types",
        "NBIRTH, NDEATH, NDATA, NCMD, STATE topics carry no device_id",
        c.no_device_id_levels,
    ),
    A(
        "tck-id-case-sensitivity-sparkplug-ids",
        "SHOULD NOT: ids equal in lower case",
        c.case_distinct_ids,
    ),
    A(
        "tck-id-case-sensitivity-metric-names",
        "SHOULD NOT: metric names equal in lower case",
        m.names_case_distinct,
        BIRTH_SCENES,
    ),
    # ------------------------------------------------------------ MQTT session
    A(
        "tck-id-principles-persistence-clean-session-311",
        "CONNECT with Clean Session = true (MQTT 3.1.1)",
        c.clean_session,
    ),
    A(
        "tck-id-principles-persistence-clean-session-50",
        "MQTT 5: Clean Start true, Session Expiry 0",
        c.mqtt_311,
        vacuous=MQTT5,
    ),
    A(
        "tck-id-principles-birth-certificates-order",
        "birth certificates are the first messages published",
        f.births_first,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-connect",
        "an MQTT session is established before NBIRTH/DBIRTH",
        f.connect_first,
    ),
    A(
        "tck-id-operational-behavior-primary-application-state-with-multiple-servers-single-server",
        "never connected to more than one server at a time",
        f.single_server,
    ),
    # ------------------------------------------------------------ Will / NDEATH
    A(
        "tck-id-message-flow-edge-node-birth-publish-will-message",
        "CONNECT includes a Will",
        c.will_set,
    ),
    A(
        "tck-id-payloads-ndeath-will-message",
        "NDEATH is registered as the Will in CONNECT",
        c.will_set,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-will-message-topic",
        "Will topic spBv1.0/group_id/NDEATH/edge_node_id",
        c.will_topic,
    ),
    A(
        "tck-id-topics-ndeath-topic",
        "NDEATH topic namespace/group_id/NDEATH/edge_node_id",
        c.combine(c.will_topic, c.topic_is("NDEATH")),
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-will-message-payload",
        "Will payload is a Sparkplug protobuf payload",
        c.will_is_sparkplug,
    ),
    A("tck-id-message-flow-edge-node-birth-publish-will-message-qos", "Will QoS 1", c.will_qos1),
    A("tck-id-payloads-ndeath-will-message-qos", "Will QoS 1 in CONNECT", c.will_qos1),
    A(
        "tck-id-message-flow-edge-node-birth-publish-will-message-will-retained",
        "Will retain false",
        c.will_not_retained,
    ),
    A(
        "tck-id-payloads-ndeath-will-message-retain",
        "Will retain false in CONNECT",
        c.will_not_retained,
    ),
    A("tck-id-topics-ndeath-payload", "NDEATH holds exactly one metric: bdSeq", c.ndeath_payload),
    A("tck-id-topics-ndeath-seq", "NDEATH has no sequence number", c.no_seq_in_ndeath),
    A("tck-id-payloads-ndeath-seq", "NDEATH has no sequence number", c.no_seq_in_ndeath),
    A(
        "tck-id-payloads-ndeath-bdseq",
        "NDEATH bdSeq = the bdSeq of the session's NBIRTH",
        c.combine(c.bdseq_matches_will, c.will_delivered_on_kill),
        ("start", "kill", "host", "end"),
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq",
        "Will bdSeq = the next NBIRTH's",
        c.bdseq_matches_will,
    ),
    A(
        "tck-id-payloads-ndeath-will-message-publisher",
        "SHOULD publish NDEATH before an intentional disconnect",
        f.intentional_disconnects,
        ("host", "end"),
    ),
    A(
        "tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt311",
        "MQTT 3.1.1: NDEATH before DISCONNECT",
        f.intentional_disconnects,
        ("host", "end"),
    ),
    A(
        "tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt50",
        "MQTT 5: DISCONNECT with Will reason code",
        c.mqtt_311,
        vacuous=MQTT5,
    ),
    A(
        "tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath",
        "intentional disconnect: NDEATH first",
        f.intentional_disconnects,
        ("host", "end"),
    ),
    A(
        "tck-id-operational-behavior-edge-node-intentional-disconnect-packet",
        "MAY: DISCONNECT right after the NDEATH",
        f.intentional_disconnects,
        ("host", "end"),
    ),
    # ------------------------------------------------------------ NBIRTH
    A(
        "tck-id-topics-nbirth-topic",
        "NBIRTH topic namespace/group_id/NBIRTH/edge_node_id",
        c.topic_is("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-nbirth-topic",
        "NBIRTH topic spBv1.0/group_id/NBIRTH/edge_node_id",
        c.topic_is("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-nbirth-payload",
        "NBIRTH payload is Sparkplug protobuf",
        c.birth_metric_fields("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-nbirth-mqtt",
        "NBIRTH QoS 0, retain false",
        c.combine(c.qos0("NBIRTH"), c.not_retained("NBIRTH")),
        BIRTH_SCENES,
    ),
    A("tck-id-payloads-nbirth-qos", "NBIRTH QoS 0", c.qos0("NBIRTH"), BIRTH_SCENES),
    A(
        "tck-id-payloads-nbirth-retain",
        "NBIRTH retain false",
        c.not_retained("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-nbirth-qos",
        "NBIRTH QoS 0",
        c.qos0("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-nbirth-retained",
        "NBIRTH retain false",
        c.not_retained("NBIRTH"),
        BIRTH_SCENES,
    ),
    A("tck-id-topics-nbirth-seq-num", "NBIRTH seq is 0", c.nbirth_seq_zero, BIRTH_SCENES),
    A(
        "tck-id-payloads-sequence-num-req-nbirth",
        "NBIRTH seq between 0 and 255",
        c.nbirth_seq_zero,
        BIRTH_SCENES,
    ),
    A("tck-id-payloads-nbirth-seq", "NBIRTH has a seq 0-255", c.nbirth_seq_zero, BIRTH_SCENES),
    A(
        "tck-id-message-flow-edge-node-birth-publish-nbirth-payload-seq",
        "NBIRTH seq 0-255",
        c.nbirth_seq_zero,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-nbirth-timestamp",
        "NBIRTH timestamp = when it was sent",
        c.stamped_when_sent("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-nbirth-timestamp",
        "NBIRTH payload timestamp = publish time",
        c.stamped_when_sent("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-nbirth-metrics",
        "each NBIRTH metric: name, datatype, current value",
        c.birth_metric_fields("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-nbirth-metric-reqs",
        "NBIRTH holds every metric the node will report",
        m.data_in_birth("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-operational-behavior-data-publish-nbirth",
        "NBIRTH holds all node metrics of the session",
        m.data_in_birth("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-operational-behavior-data-publish-nbirth-values",
        "NBIRTH values current, or is_null and no value",
        c.birth_values("NBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-publish-nbirth-order",
        "NBIRTH/NDATA non-historical values in time order",
        m.chronological("NBIRTH", "NDATA"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-nbirth-bdseq-included",
        "NBIRTH has a bdSeq metric",
        c.bdseq_in_nbirth,
        BIRTH_SCENES,
    ),
    A("tck-id-payloads-nbirth-bdseq", "NBIRTH has a bdSeq metric", c.bdseq_in_nbirth, BIRTH_SCENES),
    A(
        "tck-id-topics-nbirth-bdseq-matching",
        "NBIRTH bdSeq = the Will's of its CONNECT",
        c.bdseq_matches_will,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-nbirth-bdseq-repeat",
        "NBIRTH bdSeq = the prior CONNECT's Will",
        c.bdseq_matches_will,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-nbirth-payload-bdSeq",
        "NBIRTH bdSeq = the Will's",
        c.bdseq_matches_will,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-nbirth-bdseq-increment",
        "bdSeq starts at 0, +1 on every CONNECT",
        c.bdseq_increments,
        ("broker", "kill", "host"),
    ),
    A(
        "tck-id-topics-nbirth-rebirth-metric",
        "NBIRTH has Node Control/Rebirth, Boolean, false",
        c.rebirth_metric(),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-nbirth-rebirth-req",
        "NBIRTH has Node Control/Rebirth = false",
        c.rebirth_metric(),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-name",
        "NBIRTH has Node Control/Rebirth",
        c.rebirth_metric(),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-datatype",
        "Node Control/Rebirth is Boolean",
        c.rebirth_metric(),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-value",
        "Node Control/Rebirth is false in NBIRTH",
        c.rebirth_metric(),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-name-aliases",
        "no alias for Node Control/Rebirth",
        c.rebirth_metric(alias_allowed=False),
        BIRTH_SCENES,
    ),
    # ------------------------------------------------------------ DBIRTH
    A(
        "tck-id-topics-dbirth-topic",
        "DBIRTH topic .../DBIRTH/edge_node_id/device_id",
        c.topic_is("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-birth-publish-dbirth-topic",
        "DBIRTH topic spBv1.0/group_id/DBIRTH/edge_node_id/device_id",
        c.topic_is("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-birth-publish-dbirth-match-edge-node-topic",
        "DBIRTH group_id/edge_node_id = the NBIRTH's",
        c.topic_is("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-birth-publish-dbirth-payload",
        "DBIRTH payload is Sparkplug protobuf",
        c.birth_metric_fields("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-dbirth-mqtt",
        "DBIRTH QoS 0, retain false",
        c.combine(c.qos0("DBIRTH"), c.not_retained("DBIRTH")),
        BIRTH_SCENES,
    ),
    A("tck-id-payloads-dbirth-qos", "DBIRTH QoS 0", c.qos0("DBIRTH"), BIRTH_SCENES),
    A(
        "tck-id-payloads-dbirth-retain",
        "DBIRTH retain false",
        c.not_retained("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-birth-publish-dbirth-qos",
        "DBIRTH QoS 0",
        c.qos0("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-birth-publish-dbirth-retained",
        "DBIRTH retain false",
        c.not_retained("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-dbirth-seq",
        "DBIRTH seq = previous message's + 1 (255 -> 0)",
        c.seq_follows("DBIRTH"),
        BIRTH_SCENES,
    ),
    A("tck-id-payloads-dbirth-seq", "DBIRTH has a seq", c.has_seq("DBIRTH"), BIRTH_SCENES),
    A(
        "tck-id-payloads-dbirth-seq-inc",
        "DBIRTH seq = previous + 1, wraps at 255",
        c.seq_follows("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-birth-publish-dbirth-payload-seq",
        "DBIRTH seq 0-255, previous + 1",
        c.seq_follows("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-dbirth-timestamp",
        "DBIRTH timestamp = when it was sent",
        c.stamped_when_sent("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-dbirth-timestamp",
        "DBIRTH payload timestamp = publish time",
        c.stamped_when_sent("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-dbirth-metrics",
        "each DBIRTH metric: name, datatype, current value",
        c.birth_metric_fields("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-topics-dbirth-metric-reqs",
        "DBIRTH holds every metric the device will report",
        m.data_in_birth("DDATA"),
    ),
    A(
        "tck-id-operational-behavior-data-publish-dbirth",
        "DBIRTH holds all device metrics of the session",
        m.data_in_birth("DDATA"),
    ),
    A(
        "tck-id-operational-behavior-data-publish-dbirth-values",
        "DBIRTH values current, or is_null and no value",
        c.birth_values("DBIRTH"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-publish-dbirth-order",
        "DBIRTH/DDATA non-historical values in time order",
        m.chronological("DBIRTH", "DDATA"),
    ),
    A(
        "tck-id-message-flow-device-birth-publish-nbirth-wait",
        "NBIRTH sent in the session before any DBIRTH",
        f.dbirth_after_nbirth,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-dbirth-order",
        "DBIRTHs right after the NBIRTH, before any DATA",
        f.dbirths_right_after_nbirth,
        BIRTH_SCENES,
    ),
    # ------------------------------------------------------------ DATA
    A(
        "tck-id-topics-ddata-topic",
        "DDATA topic .../DDATA/edge_node_id/device_id",
        c.topic_is("DDATA"),
    ),
    A(
        "tck-id-topics-ddata-mqtt",
        "DDATA QoS 0, retain false",
        c.combine(c.qos0("DDATA"), c.not_retained("DDATA")),
    ),
    A("tck-id-payloads-ddata-qos", "DDATA QoS 0", c.qos0("DDATA")),
    A("tck-id-payloads-ddata-retain", "DDATA retain false", c.not_retained("DDATA")),
    A("tck-id-topics-ddata-seq-num", "DDATA seq = previous message's + 1", c.seq_follows("DDATA")),
    A("tck-id-payloads-ddata-seq", "DDATA has a seq", c.has_seq("DDATA")),
    A(
        "tck-id-payloads-ddata-seq-inc",
        "DDATA seq = previous + 1, wraps at 255",
        c.seq_follows("DDATA"),
    ),
    A(
        "tck-id-topics-ddata-timestamp",
        "DDATA timestamp = when it was sent",
        c.stamped_when_sent("DDATA"),
    ),
    A(
        "tck-id-payloads-ddata-timestamp",
        "DDATA payload timestamp = publish time",
        c.stamped_when_sent("DDATA"),
    ),
    A(
        "tck-id-topics-ddata-payload",
        "DDATA holds the device's changed metrics",
        m.data_not_empty("DDATA"),
    ),
    A(
        "tck-id-payloads-ddata-order",
        "no DDATA before the NBIRTH and the DBIRTHs",
        f.data_after_births("DDATA"),
    ),
    A(
        "tck-id-topics-ndata-topic",
        "NDATA topic .../NDATA/edge_node_id",
        c.topic_is("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-topics-ndata-mqtt",
        "NDATA QoS 0, retain false",
        c.combine(c.qos0("NDATA"), c.not_retained("NDATA")),
        vacuous=NO_NDATA,
    ),
    A("tck-id-payloads-ndata-qos", "NDATA QoS 0", c.qos0("NDATA"), vacuous=NO_NDATA),
    A(
        "tck-id-payloads-ndata-retain",
        "NDATA retain false",
        c.not_retained("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-topics-ndata-seq-num",
        "NDATA seq = previous + 1",
        c.seq_follows("NDATA"),
        vacuous=NO_NDATA,
    ),
    A("tck-id-payloads-ndata-seq", "NDATA has a seq", c.has_seq("NDATA"), vacuous=NO_NDATA),
    A(
        "tck-id-payloads-ndata-seq-inc",
        "NDATA seq = previous + 1, wraps at 255",
        c.seq_follows("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-topics-ndata-timestamp",
        "NDATA timestamp = when it was sent",
        c.stamped_when_sent("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-payloads-ndata-timestamp",
        "NDATA payload timestamp = publish time",
        c.stamped_when_sent("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-topics-ndata-payload",
        "NDATA holds the node's changed metrics",
        m.data_not_empty("NDATA"),
        vacuous=NO_NDATA,
    ),
    A(
        "tck-id-payloads-ndata-order",
        "no NDATA before the NBIRTH and DBIRTHs",
        f.data_after_births("NDATA"),
        vacuous=NO_NDATA,
    ),
    # ------------------------------------------------------------ DDEATH
    A(
        "tck-id-topics-ddeath-topic",
        "DDEATH topic .../DDEATH/edge_node_id/device_id",
        c.topic_is("DDEATH"),
        ("device", "end"),
    ),
    A(
        "tck-id-topics-ddeath-mqtt",
        "DDEATH QoS 0, retain false",
        c.combine(c.qos0("DDEATH"), c.not_retained("DDEATH")),
        ("device", "end"),
    ),
    A(
        "tck-id-topics-ddeath-seq-num",
        "DDEATH seq = previous + 1",
        c.seq_follows("DDEATH"),
        ("device", "end"),
    ),
    A("tck-id-payloads-ddeath-seq", "DDEATH has a seq", c.has_seq("DDEATH"), ("device", "end")),
    A(
        "tck-id-payloads-ddeath-seq-inc",
        "DDEATH seq = previous + 1, wraps at 255",
        c.seq_follows("DDEATH"),
        ("device", "end"),
    ),
    A(
        "tck-id-payloads-ddeath-seq-number",
        "DDEATH carries a seq",
        c.has_seq("DDEATH"),
        ("device", "end"),
    ),
    A(
        "tck-id-payloads-ddeath-timestamp",
        "DDEATH payload timestamp = publish time",
        c.stamped_when_sent("DDEATH"),
        ("device", "end"),
    ),
    A(
        "tck-id-operational-behavior-device-ddeath",
        "a lost device gets a DDEATH",
        f.ddeath_on_device_loss,
        ("device",),
    ),
    # ------------------------------------------------------------ seq and payload fields
    A(
        "tck-id-payloads-sequence-num-always-included",
        "every message but NDEATH has a seq",
        c.has_seq("NBIRTH", "DBIRTH", "DDATA", "NDATA", "DDEATH"),
    ),
    A(
        "tck-id-payloads-sequence-num-incrementing",
        "seq +1 per message after NBIRTH, 255 -> 0",
        c.seq_follows("DBIRTH", "DDATA", "NDATA", "DDEATH"),
    ),
    A("tck-id-payloads-timestamp-in-UTC", "payload timestamp in UTC", c.utc),
    A("tck-id-payloads-metric-timestamp-in-UTC", "metric timestamp in UTC", c.utc),
    A(
        "tck-id-payloads-name-birth-data-requirement",
        "timestamp on every metric of births and DATA",
        c.metric_timestamps,
    ),
    A(
        "tck-id-payloads-name-requirement",
        "a metric has a name unless aliases are used",
        m.births_named_and_aliased,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-alias-uniqueness",
        "an alias is unique across the node's metrics",
        m.alias_unique,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-alias-birth-requirement",
        "births carry name and alias",
        m.births_named_and_aliased,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-alias-data-cmd-requirement",
        "DATA carries the alias only, no name",
        m.data_aliases_only("DDATA", "NDATA"),
    ),
    A("tck-id-payloads-metric-datatype-value-type", "datatype is a uint32", m.datatypes_valid),
    A(
        "tck-id-payloads-metric-datatype-value",
        "datatype is one of the spec's values",
        m.datatypes_valid,
    ),
    A(
        "tck-id-payloads-metric-datatype-req",
        "datatype on every metric of births",
        m.datatype_in_births,
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-metric-datatype-not-req",
        "SHOULD NOT: datatype in DATA",
        m.no_datatype_in_data,
    ),
    A(
        "tck-id-payloads-propertyset-keys-array-size",
        "PropertySet: as many keys as values",
        m.properties_sized,
    ),
    A(
        "tck-id-payloads-propertyset-values-array-size",
        "PropertySet: as many values as keys",
        m.properties_sized,
    ),
    A(
        "tck-id-payloads-metric-propertyvalue-type-type",
        "PropertyValue type is a uint32",
        m.property_types(births_only=False),
    ),
    A(
        "tck-id-payloads-metric-propertyvalue-type-value",
        "PropertyValue type is a basic or property type",
        m.property_types(births_only=False),
    ),
    A(
        "tck-id-payloads-metric-propertyvalue-type-req",
        "PropertyValue type present in births",
        m.property_types(births_only=True),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-propertyset-quality-value-type",
        "Quality property is Int32 (3)",
        m.quality_property(values=False),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-payloads-propertyset-quality-value-value",
        "Quality is int_value 0, 192 or 500",
        m.quality_property(values=True),
        BIRTH_SCENES,
    ),
    # ------------------------------------------------------------ commands and subscriptions
    A(
        "tck-id-message-flow-edge-node-ncmd-subscribe",
        "subscribe spBv1.0/group_id/NCMD/edge_node_id, QoS 1",
        f.subscribed_before_births("NCMD"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-device-dcmd-subscribe",
        "subscribe .../DCMD/edge_node_id/device_id, QoS 1",
        f.subscribed_before_births("DCMD"),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-action-1",
        "on a Rebirth request, stop sending DATA",
        f.rebirth_stops_data,
        ("rebirth",),
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-action-2",
        "then a complete NBIRTH + DBIRTHs",
        f.rebirth_complete,
        ("rebirth",),
    ),
    A(
        "tck-id-operational-behavior-data-commands-rebirth-action-3",
        "the rebirth NBIRTH keeps the Will's bdSeq",
        f.rebirth_same_bdseq,
        ("rebirth",),
    ),
    # ------------------------------------------------------------ primary host
    A(
        "tck-id-operational-behavior-primary-application-state-with-multiple-servers-state-subs",
        "subscribe to the primary host's STATE",
        f.subscribed_before_births("STATE", qos=None),
        BIRTH_SCENES,
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-phid-wait",
        "no births before the primary host is online",
        f.no_birth_while_host_offline,
        ("waiting", "start", "host"),
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-phid-wait-id",
        "only the configured host id's STATE counts",
        f.no_birth_while_host_offline,
        ("waiting",),
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-phid-wait-online",
        "online must be true",
        f.no_birth_while_host_offline,
        ("waiting", "host"),
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp",
        "a STATE older than the last is ignored",
        f.no_birth_while_host_offline,
        ("host",),
    ),
    A(
        "tck-id-operational-behavior-edge-node-birth-sequence-wait",
        "wait for online=true before the birth sequence",
        f.no_birth_while_host_offline,
        ("waiting", "host"),
    ),
    A(
        "tck-id-message-flow-edge-node-birth-publish-phid-offline",
        "host offline: NDEATH, disconnect, start over",
        c.combine(f.ndeath_then_disconnect_on_host_offline, f.reconnects_after_host_offline),
        ("host",),
    ),
    A(
        "tck-id-operational-behavior-edge-node-termination-host-offline",
        "host offline (newer timestamp): disconnect",
        f.ndeath_then_disconnect_on_host_offline,
        ("host",),
    ),
    A(
        "tck-id-operational-behavior-edge-node-termination-host-offline-reconnect",
        "then connect again (next server)",
        f.reconnects_after_host_offline,
        ("host",),
    ),
    A(
        "tck-id-operational-behavior-primary-application-state-with-multiple-servers-walk",
        "host offline: end the session, move on",
        f.reconnects_after_host_offline,
        ("host",),
    ),
    A(
        "tck-id-operational-behavior-edge-node-termination-host-offline-timestamp",
        "an older offline STATE: stay connected",
        f.stale_offline_ignored,
        ("stale",),
    ),
)

#: Rules for DataSets and Templates (and the NBIRTH's template definitions): the node
#: publishes neither, which the shared check confirms.
COMPLEX_IDS = (
    "tck-id-topics-nbirth-templates",
    "tck-id-payloads-dataset-column-size",
    "tck-id-payloads-dataset-column-num-headers",
    "tck-id-payloads-dataset-types-def",
    "tck-id-payloads-dataset-types-num",
    "tck-id-payloads-dataset-types-type",
    "tck-id-payloads-dataset-types-value",
    "tck-id-payloads-dataset-parameter-type-req",
    "tck-id-payloads-template-dataset-value",
    "tck-id-payloads-template-definition-nbirth-only",
    "tck-id-payloads-template-definition-is-definition",
    "tck-id-payloads-template-definition-ref",
    "tck-id-payloads-template-definition-members",
    "tck-id-payloads-template-definition-nbirth",
    "tck-id-payloads-template-definition-parameters",
    "tck-id-payloads-template-definition-parameters-default",
    "tck-id-payloads-template-instance-is-definition",
    "tck-id-payloads-template-instance-ref",
    "tck-id-payloads-template-instance-members",
    "tck-id-payloads-template-instance-members-birth",
    "tck-id-payloads-template-instance-members-data",
    "tck-id-payloads-template-instance-parameters",
    "tck-id-payloads-template-version",
    "tck-id-payloads-template-ref-definition",
    "tck-id-payloads-template-ref-instance",
    "tck-id-payloads-template-is-definition",
    "tck-id-payloads-template-is-definition-definition",
    "tck-id-payloads-template-is-definition-instance",
    "tck-id-payloads-template-parameter-name-required",
    "tck-id-payloads-template-parameter-name-type",
    "tck-id-payloads-template-parameter-value-type",
    "tck-id-payloads-template-parameter-type-value",
    "tck-id-payloads-template-parameter-type-req",
    "tck-id-payloads-template-parameter-value",
)
ASSERTIONS += tuple(
    A(i, "DataSet / Template rule", m.no_datasets_or_templates, vacuous=NO_COMPLEX)
    for i in COMPLEX_IDS
)

"""The least-privilege proof's own tests (infra/tests/permissions.py): on a
synthetic template and records it passes when the policies are exact and
fails on each kind of defect. Run by ./scripts/test:
    .venv/bin/python -m unittest discover -s infra/tests -p 'test_*.py'
"""

import copy
import unittest

from permissions import check

TABLE = {"Fn::GetAtt": ["Table", "Arn"]}


def index(name):
    return {"Fn::Sub": "${Table.Arn}/index/" + name}


def template():
    return {
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "PointsQueue": {"Type": "AWS::SQS::Queue"},
            "FailureQueue": {"Type": "AWS::SQS::Queue"},
            "UserPool": {"Type": "AWS::Cognito::UserPool"},
            "SignupFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "../functions/signup",
                    "Environment": {"Variables": {"TABLE_NAME": {"Ref": "Table"}, "USER_POOL_ID": {"Ref": "UserPool"}}},
                    "Policies": [{"Statement": [
                        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": TABLE},
                        {"Effect": "Allow", "Action": ["dynamodb:DeleteItem"], "Resource": TABLE,
                         "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["MEMBER#*"]}}},
                        {"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": [index("gsi3")]},
                        {"Effect": "Allow", "Action": ["cognito-idp:AdminDeleteUser"],
                         "Resource": {"Fn::GetAtt": ["UserPool", "Arn"]}},
                    ]}],
                    "Events": {"Export": {"Type": "HttpApi", "Properties": {"Method": "get", "Path": "/members/me/export"}}},
                },
            },
            "RelayFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "../functions/relay",
                    "Environment": {"Variables": {"POINTS_QUEUE_URL": {"Ref": "PointsQueue"}}},
                    "Policies": [
                        {"Statement": [{"Effect": "Allow", "Action": ["sqs:SendMessage"],
                                        "Resource": [{"Fn::GetAtt": ["PointsQueue", "Arn"]}]}]},
                        {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["FailureQueue", "QueueName"]}}},
                    ],
                    "Events": {"Stream": {"Type": "DynamoDB", "Properties": {
                        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}}}}},
                },
            },
        }
    }


def rec(entry, action, resource="table", index=None, key=None, package="signup"):
    return {"package": package, "entry": entry, "action": action, "resource": resource, "index": index, "key": key}


EXPORT = "http:GET /members/me/export"
RECORDS = [
    rec(EXPORT, "dynamodb:GetItem", key="MEMBER#*"),
    rec(EXPORT, "dynamodb:PutItem", key="MEMBER#*"),
    rec(EXPORT, "dynamodb:DeleteItem", key="MEMBER#*"),
    rec(EXPORT, "dynamodb:Query", index="gsi3", key="MEMBER#*"),
    rec(EXPORT, "cognito-idp:AdminDeleteUser", resource="userpool"),
    rec("fn:relay", "sqs:SendMessage", resource="queue:points", package="relay"),
]
CRATES = ["relay", "signup"]


class PermissionsProof(unittest.TestCase):
    def failures(self, t=None, records=None, allowed=None):
        return check(t or template(), RECORDS if records is None else records, CRATES, allowed or {})

    def test_exact_policies_pass(self):
        self.assertEqual(self.failures(), [])

    def test_a_query_on_an_index_not_granted_fails(self):
        # The GET /members/me/export defect: Query granted on the table, used on gsi3.
        t = template()
        st = t["Resources"]["SignupFunction"]["Properties"]["Policies"][0]["Statement"]
        st[2]["Resource"] = TABLE
        f = self.failures(t)
        self.assertTrue(any("not granted dynamodb:Query on Table/index/gsi3" in x for x in f), f)
        self.assertTrue(any("grants dynamodb:Query on Table, which no test used" in x for x in f), f)

    def test_a_grant_no_test_used_fails(self):
        t = template()
        t["Resources"]["SignupFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"].append("dynamodb:UpdateItem")
        f = self.failures(t)
        self.assertEqual(len(f), 1, f)
        self.assertIn("SignupFunction: grants dynamodb:UpdateItem on Table, which no test used", f[0])

    def test_the_allowlist_excuses_a_grant_with_its_reason(self):
        t = template()
        t["Resources"]["SignupFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"].append("dynamodb:UpdateItem")
        allowed = {("SignupFunction", "dynamodb:UpdateItem", "Table"): "no test can reach it"}
        self.assertEqual(self.failures(t, allowed=allowed), [])

    def test_a_key_outside_the_leading_keys_condition_fails(self):
        records = RECORDS + [rec(EXPORT, "dynamodb:DeleteItem", key="IDEA#*")]
        f = self.failures(records=records)
        self.assertEqual(len(f), 1, f)
        self.assertIn("not granted dynamodb:DeleteItem on Table (partition keys IDEA#*)", f[0])

    def test_an_unused_leading_key_pattern_fails(self):
        t = template()
        cond = t["Resources"]["SignupFunction"]["Properties"]["Policies"][0]["Statement"][1]["Condition"]
        cond["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].append("IDEA#*")
        f = self.failures(t)
        self.assertEqual(len(f), 1, f)
        self.assertIn("for keys IDEA#*, which no test used", f[0])

    def test_a_send_to_a_queue_not_granted_fails_and_the_on_failure_queue_is_exempt(self):
        t = template()
        t["Resources"]["EmailsQueue"] = {"Type": "AWS::SQS::Queue"}
        t["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]["EMAILS_QUEUE_URL"] = {"Ref": "EmailsQueue"}
        records = RECORDS + [rec("fn:relay", "sqs:SendMessage", resource="queue:emails", package="relay")]
        f = self.failures(t, records=records)
        self.assertEqual(f, ["RelayFunction: not granted sqs:SendMessage on queue EmailsQueue, "
                             "used by fn:relay (tests of relay)"])

    def test_calls_are_attributed_to_the_function_the_route_belongs_to(self):
        # A relay test driving signup's route: the call is signup's, not relay's.
        records = RECORDS + [rec(EXPORT, "dynamodb:Query", index="gsi1", key="X", package="relay")]
        f = self.failures(records=records)
        self.assertEqual(len(f), 1, f)
        self.assertIn("SignupFunction: not granted dynamodb:Query on Table/index/gsi1", f[0])

    def test_an_unknown_route_or_entry_fails_and_other_packages_are_ignored(self):
        records = RECORDS + [rec("http:GET /nowhere", "dynamodb:GetItem"), rec("fn:mailfeedback", "dynamodb:GetItem"),
                             rec("http:GET /nowhere", "dynamodb:Scan", package="local")]
        f = self.failures(records=records)
        self.assertEqual(len(f), 2, f)
        self.assertIn("GET /nowhere", f[0])
        self.assertIn("fn:mailfeedback", f[1])

    def test_an_unknown_sam_template_or_condition_cannot_pass(self):
        t = template()
        pols = t["Resources"]["SignupFunction"]["Properties"]["Policies"]
        pols.append({"S3ReadPolicy": {"BucketName": "b"}})
        pols[0]["Statement"][1]["Condition"] = {"StringEquals": {"aws:SourceVpc": "v"}}
        f = self.failures(t)
        self.assertTrue(any("S3ReadPolicy is unknown" in x for x in f), f)
        self.assertTrue(any("cannot be checked" in x for x in f), f)

    def test_a_sam_template_expands_to_its_actions(self):
        t = template()
        pols = t["Resources"]["SignupFunction"]["Properties"]["Policies"]
        pols.append({"DynamoDBReadPolicy": {"TableName": {"Ref": "Table"}}})
        f = self.failures(copy.deepcopy(t))
        self.assertTrue(any("grants dynamodb:Scan on Table, which no test used" in x for x in f), f)
        self.assertTrue(any("grants dynamodb:DescribeTable on Table/index/*" in x for x in f), f)


if __name__ == "__main__":
    unittest.main()

"""Reach, step 2: [id, user] -> one [id, follower] per follower of the user, anchored and
acked. Many tasks share this work; the distinct count per request is done by Squall's
built-in drpc_aggregate."""
import json

from pystorm import Bolt


class FollowersBolt(Bolt):
    def initialize(self, conf, context):
        with open(conf.get("reach.data", "data/graph.json")) as graph:
            self.followers = json.load(graph)["followers"]

    def process(self, tup):
        request, user = tup.values[0], tup.values[1]
        for follower in self.followers.get(user, []):
            self.emit([request, follower])


if __name__ == "__main__":
    FollowersBolt().run()

"""Reach, step 1: [id, url] -> one [id, user] per user who tweeted the URL, anchored to
the request and acked (pystorm's defaults)."""
import json

from pystorm import Bolt


class TweetersBolt(Bolt):
    def initialize(self, conf, context):
        with open(conf.get("reach.data", "data/graph.json")) as graph:
            self.tweeters = json.load(graph)["tweeters"]

    def process(self, tup):
        request, url = tup.values[0], tup.values[1]
        for user in self.tweeters.get(url, []):
            self.emit([request, user])


if __name__ == "__main__":
    TweetersBolt().run()

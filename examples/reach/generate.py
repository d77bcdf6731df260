"""Writes data/graph.json: a small, fixed social graph for the reach example.

    tweeters:  URL -> the users who tweeted it
    followers: user -> the users who follow them

The graph comes from a seeded generator, so running this again writes the same file.
"""
import json
import random

URLS = 20
TWEETERS = 300
FOLLOWERS = 3000


def main():
    rng = random.Random(7)
    users = [f"user{n}" for n in range(TWEETERS)]
    fans = [f"fan{n}" for n in range(FOLLOWERS)]
    tweeters = {}
    for n in range(URLS):
        url = f"https://example.com/{n}"
        tweeters[url] = sorted(rng.sample(users, rng.randint(1, 40)))
    followers = {}
    for user in users:
        # Followers overlap a lot between users, so the distinct count differs from the sum.
        followers[user] = sorted(rng.sample(fans, rng.randint(0, 120)))
    with open("data/graph.json", "w") as out:
        json.dump({"tweeters": tweeters, "followers": followers}, out, indent=0, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()

from minikafka.testing.profiles import load_profile

# The ci profile is the default; pass --hypothesis-profile=dev (or deep) to explore further.
load_profile()

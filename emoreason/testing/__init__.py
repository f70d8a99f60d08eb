"""emoreason.testing"""

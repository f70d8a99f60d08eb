"""emoreason.data"""

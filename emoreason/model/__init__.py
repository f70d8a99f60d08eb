"""emoreason.model"""

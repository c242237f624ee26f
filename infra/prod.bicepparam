// The prod environment. Names must match pipelines/vars-prod.yml.
using './main.bicep'

param environment = 'prod'
param location = 'westeurope'
param resourceGroupName = 'rg-energy-edge-prod'
param iotHubName = 'iot-energy-edge-prod'
param dpsName = 'provs-energy-edge-prod'
param registryName = 'crenergyedgeprod'
param storageAccountName = 'stenergyedgeprod'
param workspaceName = 'log-energy-edge-prod'
param alertEmail = 'energy-edge-ops@example.com'
param expectedConnectedDevices = 20
param minMessagesPerHour = 1000
param tags = {
  costCenter: 'energy-edge'
}
